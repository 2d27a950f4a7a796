"""Write `model.onnx` beside an exported Paddle model, through paddle2onnx's Python API.

paddle2onnx is optional (requirements-onnx.txt): without it, one line says what to install.
The opset is one that both ONNX Runtime and OpenVINO run; the ops paddle2onnx has no mapper for
are rewritten before tracing (ppdet_gcnet.deploy.onnx_forms, applied by export_model).
"""
import os

# Both ONNX Runtime (>= 1.14) and OpenVINO (>= 2023) run opset 16.
OPSET = 16
INSTALL_HINT = "pip install -r requirements-onnx.txt"


class ExportError(RuntimeError):
    """An export that cannot be written; the message is one line for the user."""


def require_paddle2onnx():
    try:
        import paddle2onnx  # noqa: F401
    except ImportError:
        raise ExportError(f"--onnx needs paddle2onnx, which is not installed: {INSTALL_HINT}")


def write_onnx(model_dir, opset=OPSET, log=None):
    """Convert `model_dir`'s model.json + model.pdiparams to `model_dir/model.onnx`
    (written to a temporary name first). Returns the ONNX file's path."""
    require_paddle2onnx()
    import paddle2onnx
    target = os.path.join(model_dir, 'model.onnx')
    partial = target + '.partial'
    try:
        paddle2onnx.export(os.path.join(model_dir, 'model.json'),
                           os.path.join(model_dir, 'model.pdiparams'), save_file=partial,
                           opset_version=opset, auto_upgrade_opset=False,
                           enable_onnx_checker=True, verbose=False)
    except (Exception, SystemExit) as e:
        raise ExportError(f"paddle2onnx could not convert {model_dir}: {_first_line(e)}")
    if not os.path.isfile(partial):
        raise ExportError(f"paddle2onnx wrote no ONNX file for {model_dir} (see its log above)")
    os.replace(partial, target)
    if log:
        log(f"ONNX (opset {opset}) -> {target}")
    return target


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
