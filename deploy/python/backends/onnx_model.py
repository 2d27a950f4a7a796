"""What the ONNX backends share: finding `model.onnx` and importing an optional package."""
import importlib
import os

from ..errors import DeployError

INSTALL_HINT = "pip install -r requirements-onnx.txt"


def import_optional(package, backend):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise DeployError(f"--backend {backend} needs the {package} package, which is not "
                          f"installed: {INSTALL_HINT}")


def onnx_file(model):
    path = os.path.join(model.model_dir, model.infer_cfg.get('onnx_file') or 'model.onnx')
    if not os.path.isfile(path):
        raise DeployError(f"{path}: missing (ONNX model); export with "
                          "tools/export_model.py --onnx")
    if os.path.getsize(path) == 0:
        raise DeployError(f"{path}: file is empty (ONNX model)")
    return path


def load_error(path, runtime, error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = (lines[-1] if lines else type(error).__name__)[:300]
    return DeployError(f"{path}: {runtime} cannot load the ONNX model ({reason})")
