"""GCNet (global context networks) for PaddleDetection.

Importing this package registers `GCResNet` in `ppdet.core.workspace`, so PaddleDetection YAML
configs can name it, and repairs the parts of an installed PaddleDetection that a probe finds
broken on this Paddle (see `ppdet_gcnet.compat`).
"""
import importlib.util

# Paddle is not a declared dependency: its CPU and GPU builds are different distributions.
if importlib.util.find_spec('paddle') is None:
    raise ImportError("ppdet_gcnet needs PaddlePaddle 3, which is not installed: "
                      "pip install 'ppdet-gcnet[cpu]' (CPU) or paddlepaddle-gpu 3.x (GPU)")

from . import compat  # noqa: F401,E402  (first: later imports may build ppdet layers)
from .modeling import GCConfigError, GCResNet, GlobalContextBlock  # noqa: E402
from . import legacy  # noqa: F401,E402  (registers the legacy-exact pipeline components)
from . import mmdet  # noqa: F401,E402  (registers mmdetection pipeline switches)

__all__ = ['GlobalContextBlock', 'GCResNet', 'GCConfigError']
__version__ = '0.1.0'
