"""What the ONNX backends share: finding `model.onnx` (or `model_int8.onnx`), importing an
optional package and the model a runtime loads (rewritten for fp32 or int8 at load time)."""
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


def _rewrites(options):
    """The load-time rewrites for `options`' backend and precision, in the order they run."""
    from .. import (context_add_rows, context_channels_last, gated_conv_blocked,
                    int8_dynamic_fc, int8_gate_scale, int8_weight_range, winograd)
    int8 = options.run_mode == 'int8'
    fp32 = not int8 and not options.enable_mkldnn_bfloat16
    ort = options.backend == 'onnxruntime'
    rewrites = []
    if int8 or (fp32 and not ort):  # where the runtime keeps y channels-last
        rewrites.append(context_channels_last.rewrite)
    if int8:
        if int8_weight_range.saturates(options.backend):
            rewrites.append(int8_weight_range.rewrite)
        if ort:
            rewrites.append(int8_gate_scale.rewrite)  # after narrowing: it reads the scales
            rewrites.append(int8_dynamic_fc.rewrite)
    elif fp32:
        if options.winograd:
            rewrites.append(winograd.rewrite)
        if ort:
            rewrites += [context_add_rows.rewrite, gated_conv_blocked.rewrite]
    return rewrites


def runtime_model(path, options, runtime):
    """What `runtime` loads for the ONNX file `path` run with `options`: the file itself, or its
    bytes rewritten for that run: in int8 and in OpenVINO fp32, the GC context read
    channels-last (deploy/python/context_channels_last.py); in fp32 (not int8, not bf16) with
    `options.winograd`, the large 3x3 convolutions in Winograd form (deploy/python/winograd.py),
    and in ONNX Runtime fp32 GC add's context added a row at a time
    (deploy/python/context_add_rows.py) and GC mul's residual added in the blocked layout
    (deploy/python/gated_conv_blocked.py); in int8, the convolution weights narrowed to 7 bits
    where this CPU's int8 dot product saturates (deploy/python/int8_weight_range.py) and, in
    ONNX Runtime, GC gates applied by the convolutions' requantization
    (deploy/python/int8_gate_scale.py) and the box head's fully connected layers quantized per
    run (deploy/python/int8_dynamic_fc.py)."""
    if options.run_mode != 'int8' and options.enable_mkldnn_bfloat16:
        return path
    onnx = import_optional('onnx', options.backend)  # the rewrites and the int8 probe use it
    rewrites = _rewrites(options)
    if not rewrites:
        return path
    try:
        model = onnx.load(path)
    except Exception as e:
        raise load_error(path, runtime, e)
    if sum([rewrite(model) for rewrite in rewrites]) == 0:  # every rewrite runs
        return path
    return model.SerializeToString()
