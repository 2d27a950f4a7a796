"""A Paddle Inference predictor for an exported detector, configured from the deploy options.

Paddle Inference 3.3.1 facts this module works around (see deploy/README.md):
- `Config.enable_memory_optim()` fails under PIR ("Not find predictor_id 0 and pass_name
  memory_optimize_pass"): it is never called.
- oneDNN is on by default on CPU, and it cannot run `nearest_interp`/`bilinear_interp` (their
  `double[]` attribute is not converted): with oneDNN on, a model containing them is refused with
  a pointer to the export-side fix (`ppdet_gcnet.deploy.make_onednn_safe`) instead of failing in
  the predictor; with oneDNN off it is disabled explicitly.
"""
from dataclasses import dataclass

import numpy as np

from .cpu_features import has_bf16
from .errors import DeployError
from .model_files import ModelFiles

DEVICES = ('CPU', 'GPU')
RUN_MODES = ('paddle', 'trt_fp32', 'trt_fp16', 'trt_int8')


@dataclass
class PredictorOptions:
    device: str = 'CPU'
    run_mode: str = 'paddle'
    cpu_threads: int = 1
    enable_mkldnn: bool = False
    enable_mkldnn_bfloat16: bool = False
    batch_size: int = 1

    def check(self):
        device = self.device.upper()
        if device not in DEVICES:
            raise DeployError(f"--device {self.device!r}: allowed {', '.join(DEVICES)}")
        if self.run_mode not in RUN_MODES:
            raise DeployError(f"--run_mode {self.run_mode!r}: allowed {', '.join(RUN_MODES)}")
        if self.run_mode != 'paddle' and device != 'GPU':
            raise DeployError(f"--run_mode {self.run_mode}: TensorRT needs --device GPU")
        if self.cpu_threads < 1:
            raise DeployError(f"--cpu_threads {self.cpu_threads}: must be >= 1")
        if self.batch_size < 1:
            raise DeployError(f"--batch_size {self.batch_size}: must be >= 1")
        if self.enable_mkldnn_bfloat16 and not self.enable_mkldnn:
            raise DeployError("--enable_mkldnn_bfloat16 needs --enable_mkldnn")
        if self.enable_mkldnn_bfloat16 and not has_bf16():
            raise DeployError("--enable_mkldnn_bfloat16: this CPU has neither AVX512-BF16 nor "
                              "AMX-BF16; run fp32 oneDNN instead")
        self.device = device
        return self


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


def create_predictor(model: ModelFiles, options: PredictorOptions):
    from paddle import inference
    options.check()
    config = inference.Config(model.program, model.params)
    if options.device == 'GPU':
        _configure_gpu(config, options)
    else:
        _configure_cpu(config, options, model)
    config.switch_ir_optim(True)
    config.disable_glog_info()
    try:
        return inference.create_predictor(config)
    except Exception as e:  # Paddle raises several types; all mean "this model cannot load"
        raise DeployError(f"{model.model_dir}: Paddle Inference cannot load the model "
                          f"({_first_line(e)})")


def _first_line(error):
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for line in lines:
        if 'Error' in line or 'error' in line:
            return line[:300]
    return (lines[0] if lines else type(error).__name__)[:300]


class DetectorOutputs(dict):
    """boxes [N, 6] (class, score, x1, y1, x2, y2), boxes_num [B], masks [N, H, W] or None."""


def run_predictor(predictor, inputs):
    """Feed `inputs` (name -> array) and return DetectorOutputs, outputs told apart by rank."""
    for name in predictor.get_input_names():
        if name not in inputs:
            raise DeployError(f"the exported model needs input {name!r}, which preprocessing "
                              f"does not produce (have: {', '.join(inputs)})")
        handle = predictor.get_input_handle(name)
        array = np.ascontiguousarray(inputs[name])
        handle.reshape(array.shape)
        handle.copy_from_cpu(array)
    try:
        predictor.run()
    except Exception as e:
        raise DeployError(f"inference failed ({_first_line(e)})")
    outputs = DetectorOutputs(boxes=None, boxes_num=None, masks=None)
    for name in predictor.get_output_names():
        array = predictor.get_output_handle(name).copy_to_cpu()
        if array.ndim == 2 and array.shape[1] == 6:
            outputs['boxes'] = array
        elif array.ndim == 1:
            outputs['boxes_num'] = array
        elif array.ndim == 3:
            outputs['masks'] = array
    if outputs['boxes'] is None or outputs['boxes_num'] is None:
        raise DeployError("the exported model does not output detections ([N, 6] boxes and "
                          "per-image counts); is it a detector export?")
    return outputs
