"""Paddle Inference: the exported `model.json` + `model.pdiparams`, CPU (plain or oneDNN fp32 /
bf16) or GPU (optionally TensorRT).

Paddle Inference 3.3.1 facts this module works around (see deploy/README.md):
- `Config.enable_memory_optim()` fails under PIR ("Not find predictor_id 0 and pass_name
  memory_optimize_pass"): it is never called.
- oneDNN is on by default on CPU, and it cannot run `nearest_interp`/`bilinear_interp` (their
  `double[]` attribute is not converted): with oneDNN on, a model containing them is refused with
  a pointer to the export-side fix (`ppdet_gcnet.deploy.make_onednn_safe`) instead of failing in
  the predictor; with oneDNN off it is disabled explicitly.
- Its executor frees every intermediate tensor as soon as its last reader has run, and the CPU
  allocator hands large blocks back to the system (glibc: every block over 32 MB, most smaller
  ones after a trim), so each run takes all of its memory afresh: for R50 Mask R-CNN at 800x1344
  about 1.3 GB of page faults per image, about 1 s of kernel time (2 threads). With
  `retain_memory` the predictor runs with `FLAGS_eager_delete_tensor_gb=-1` (read when its
  executor is built, at the first run; set around each of its runs only, so other predictors keep
  the default): tensors keep their memory between runs and a run reuses it, for the resident
  memory of every intermediate (same model: 1.1 -> 3.7 GB). By default (`keep_freed_memory`)
  a CPU predictor has glibc's malloc keep what the process frees instead
  (deploy/python/freed_memory.py): the same reuse for about the resident memory of the largest
  run, whatever the executor frees.
"""
import contextlib

import numpy as np

from .. import freed_memory
from ..errors import DeployError


def find_onednn_unsafe_ops(program_path):
    """Ops that oneDNN cannot run in Paddle 3.3.1, found in the serialised program."""
    if not program_path.endswith('.json'):
        return []
    with open(program_path) as f:
        text = f.read()
    return [op for op in ('nearest_interp', 'bilinear_interp') if f'"1.{op}' in text]


def _configure_gpu(config, options):
    import paddle
    if not paddle.is_compiled_with_cuda():
        raise DeployError("--device GPU: this Paddle build has no CUDA support; use --device CPU")
    config.enable_use_gpu(200, 0)
    if options.run_mode.startswith('trt_'):
        precision = {'trt_fp32': config.Precision.Float32, 'trt_fp16': config.Precision.Half,
                     'trt_int8': config.Precision.Int8}[options.run_mode]
        config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=options.batch_size,
                                      min_subgraph_size=3, precision_mode=precision,
                                      use_static=False, use_calib_mode=options.run_mode == 'trt_int8')


def _configure_cpu(config, options, model):
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(options.cpu_threads)
    if not options.enable_mkldnn:
        config.disable_onednn()  # on by default in Paddle 3 CPU builds
        return
    unsafe = find_onednn_unsafe_ops(model.program)
    if unsafe:
        raise DeployError(
            f"{model.program}: contains {', '.join(unsafe)}, which Paddle Inference 3.3.1 cannot "
            "run with oneDNN; re-export with ppdet_gcnet.deploy.make_onednn_safe applied, or run "
            "without --enable_mkldnn")
    config.enable_onednn()
    config.set_onednn_cache_capacity(10)  # input shapes vary with the image: bound the cache
    if options.enable_mkldnn_bfloat16:
        config.enable_onednn_bfloat16()


def first_error_line(error):
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for line in lines:
        if 'Error' in line or 'error' in line:
            return line[:300]
    return (lines[0] if lines else type(error).__name__)[:300]


@contextlib.contextmanager
def _tensors_kept(keep):
    """A predictor whose executor is built inside (its first run) keeps its intermediate
    tensors between runs (`keep`)."""
    if not keep:
        yield
        return
    import paddle
    flag = 'FLAGS_eager_delete_tensor_gb'
    before = paddle.get_flags([flag])[flag]
    paddle.set_flags({flag: -1.0})
    try:
        yield
    finally:
        paddle.set_flags({flag: before})


class PaddlePredictor:

    def __init__(self, predictor, retain_memory=False):
        self.predictor = predictor
        self.retain_memory = retain_memory
        self.input_names = predictor.get_input_names()

    def run(self, inputs):
        for name in self.input_names:
            handle = self.predictor.get_input_handle(name)
            array = np.ascontiguousarray(inputs[name])
            handle.reshape(array.shape)
            handle.copy_from_cpu(array)
        try:
            with _tensors_kept(self.retain_memory):
                self.predictor.run()
        except Exception as e:
            raise DeployError(f"inference failed ({first_error_line(e)})")
        return [self.predictor.get_output_handle(name).copy_to_cpu()
                for name in self.predictor.get_output_names()]


def create(model, options):
    from paddle import inference
    if model.program is None:
        raise DeployError(f"{model.model_dir}: no exported Paddle program (model.json); "
                          "export one with tools/export_model.py")
    config = inference.Config(model.program, model.params)
    if options.device == 'GPU':
        _configure_gpu(config, options)
    else:
        _configure_cpu(config, options, model)
    config.switch_ir_optim(True)
    config.disable_glog_info()
    if options.device == 'CPU' and options.keep_freed_memory:
        freed_memory.keep_freed_memory()
    try:
        return PaddlePredictor(inference.create_predictor(config), options.retain_memory)
    except Exception as e:  # Paddle raises several types; all mean "this model cannot load"
        raise DeployError(f"{model.model_dir}: Paddle Inference cannot load the model "
                          f"({first_error_line(e)})")
