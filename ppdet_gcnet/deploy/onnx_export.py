"""Write `model.onnx` beside an exported Paddle model, through paddle2onnx's Python API.

paddle2onnx is optional (requirements-onnx.txt): without it, one line says what to install.
The opset is one that both ONNX Runtime and OpenVINO run; the ops paddle2onnx has no mapper for
are rewritten before tracing (ppdet_gcnet.deploy.onnx_forms, applied by export_model). After
conversion, `ONNX_REWRITES` change the ONNX file alone (the Paddle model keeps the forms Paddle
Inference's oneDNN path needs), each computing the same function: the FPN's 2x upsampling as one
`Resize` (ppdet_gcnet.deploy.onnx_upsample) and the GC add residuals' shape annotations ONNX
Runtime needs to fuse them into their convolutions (ppdet_gcnet.deploy.onnx_shapes).
"""
import os
import subprocess
import sys

# Both ONNX Runtime (>= 1.14) and OpenVINO (>= 2023) run opset 16. Deformable convolution
# (the DCN configs) exists in ONNX from opset 19 (DeformConv): ONNX Runtime runs it, OpenVINO
# 2026.4's ONNX reader does not.
OPSET = 16
DEFORM_CONV_OPSET = 19
INSTALL_HINT = "pip install -r requirements-onnx.txt"


class ExportError(RuntimeError):
    """An export that cannot be written; the message is one line for the user."""


def require_paddle2onnx():
    try:
        import paddle2onnx  # noqa: F401
    except ImportError:
        raise ExportError(f"--onnx needs paddle2onnx, which is not installed: {INSTALL_HINT}")


# paddle2onnx aborts the whole process (SIGABRT) on a graph it cannot convert, so it runs in a
# child process. Its default optimizer (polygraphy) pip-installs packages at run time, which can
# replace the environment's numpy: onnxoptimizer, one of its own dependencies, is used instead.
_CONVERT = """
import sys
import paddle2onnx
model, params, target, opset = sys.argv[1:5]
paddle2onnx.export(model, params, save_file=target, opset_version=int(opset),
                   auto_upgrade_opset=False, enable_onnx_checker=True,
                   optimize_tool='onnxoptimizer', verbose=False)
"""


def write_onnx(model_dir, opset=OPSET, log=None):
    """Convert `model_dir`'s model.json + model.pdiparams to `model_dir/model.onnx`
    (written to a temporary name first). Returns the ONNX file's path."""
    require_paddle2onnx()
    target = os.path.join(model_dir, 'model.onnx')
    partial = target + '.partial'
    program = os.path.join(model_dir, 'model.json')
    with open(program) as f:
        if '"1.deformable_conv"' in f.read():
            opset = max(opset, DEFORM_CONV_OPSET)
    run = subprocess.run(
        [sys.executable, '-c', _CONVERT, program, os.path.join(model_dir, 'model.pdiparams'),
         partial, str(opset)], capture_output=True, text=True)
    if run.returncode != 0 or not os.path.isfile(partial):
        raise ExportError(f"paddle2onnx could not convert {model_dir}: {_reason(run)}")
    applied = rewrite_onnx(partial)
    os.replace(partial, target)
    if log:
        log(f"ONNX (opset {opset}) -> {target}; ONNX rewrites: {applied}")
    return target


def _upsampling(model):
    from .onnx_upsample import use_resize_for_nearest_upsampling
    return use_resize_for_nearest_upsampling(model)


def _residual_shapes(model):
    from .onnx_shapes import annotate_lean_gc_residuals
    return annotate_lean_gc_residuals(model)


# (name, function(onnx ModelProto) -> count), applied in order to the converted file.
ONNX_REWRITES = [
    ('nearest_upsampling_as_resize', _upsampling),
    ('gc_residual_shapes', _residual_shapes),
]


def rewrite_onnx(path):
    """Apply `ONNX_REWRITES` to the ONNX file at `path`, in place. Returns {name: count}."""
    import onnx
    model = onnx.load(path)
    applied = {name: rewrite(model) for name, rewrite in ONNX_REWRITES}
    if any(applied.values()):
        onnx.save(model, path)
    return applied


def _reason(run):
    lines = [line.strip() for line in (run.stderr + run.stdout).splitlines()
             if 'ERROR' in line or 'Error' in line]
    return lines[0][:300] if lines else f"exit status {run.returncode}"
