"""What the ONNX backends share: finding `model.onnx` (or `model_int8.onnx`), importing an
optional package and the model a runtime loads (the fp32 one in Winograd form)."""
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


INT8_FILE = 'model_int8.onnx'  # written by deploy/python/quantize.py


def onnx_file(model, int8=False):
    """The export's fp32 ONNX model, or with `int8` its quantized one."""
    if int8:
        path = os.path.join(model.model_dir, INT8_FILE)
        if not os.path.isfile(path):
            raise DeployError(f"{path}: missing (int8 model); make it with "
                              "deploy/python/quantize.py --model_dir ... --calib_image_dir ...")
    else:
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


def runtime_model(path, options, runtime):
    """What `runtime` loads for the ONNX file `path` run with `options`: the file itself, or, in
    an fp32 run (not int8, not bf16) with `options.winograd`, its bytes with the large 3x3
    convolutions in Winograd form (deploy/python/winograd.py)."""
    fp32 = options.run_mode != 'int8' and not options.enable_mkldnn_bfloat16
    if not (fp32 and options.winograd):
        return path
    onnx = import_optional('onnx', options.backend)
    from .. import winograd
    try:
        model = onnx.load(path)
    except Exception as e:
        raise load_error(path, runtime, e)
    if winograd.rewrite(model) == 0:
        return path
    return model.SerializeToString()
