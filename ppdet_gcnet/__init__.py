"""GCNet (global context networks) for PaddleDetection.

Importing this package registers `GCResNet` in `ppdet.core.workspace`, so PaddleDetection YAML
configs can name it, and repairs the parts of an installed PaddleDetection that a probe finds
broken on this Paddle (see `ppdet_gcnet.compat`).
"""
from . import compat  # noqa: F401  (first: later imports may build ppdet layers)
from .modeling import GCConfigError, GCResNet, GlobalContextBlock

__all__ = ['GlobalContextBlock', 'GCResNet', 'GCConfigError']
__version__ = '0.1.0'
