"""One predictor interface over the inference backends (deploy/python/backends/, one module
each): Paddle Inference on `model.json`, ONNX Runtime and OpenVINO on `model.onnx`.

`create_predictor(model, options)` checks the options and builds the backend's predictor;
`run_predictor(predictor, inputs)` feeds it and tells the detector's outputs apart. An export
that takes at most `max_batch_size` images per run (infer_cfg.yml; the ONNX forms take one) is
fed in slices of that size and the results joined, so every backend takes any batch.
"""
from dataclasses import dataclass

import numpy as np

from .backends.paddle_inference import find_onednn_unsafe_ops  # noqa: F401  (public)
from .cpu_features import has_bf16
from .errors import DeployError
from .model_files import ModelFiles

DEVICES = ('CPU', 'GPU')
# 'int8': the export's int8 ONNX model (deploy/python/quantize.py) on ONNX Runtime or OpenVINO.
RUN_MODES = ('paddle', 'trt_fp32', 'trt_fp16', 'trt_int8', 'int8')
BACKENDS = ('paddle', 'onnxruntime', 'openvino')


@dataclass
class PredictorOptions:
    device: str = 'CPU'
    run_mode: str = 'paddle'
    cpu_threads: int = 1
    enable_mkldnn: bool = False
    enable_mkldnn_bfloat16: bool = False
    batch_size: int = 1
    backend: str = 'paddle'
    winograd: bool = True       # fp32 ONNX backends: large 3x3 convs as Winograd F(4x4, 3x3)
    retain_memory: bool = False  # Paddle Inference: keep tensors' memory between runs
    # Paddle Inference on CPU: malloc keeps what the process frees (deploy/python/freed_memory.py)
    keep_freed_memory: bool = True

    def check(self):
        device = self.device.upper()
        if self.backend not in BACKENDS:
            raise DeployError(f"--backend {self.backend!r}: allowed {', '.join(BACKENDS)}")
        if device not in DEVICES:
            raise DeployError(f"--device {self.device!r}: allowed {', '.join(DEVICES)}")
        if self.run_mode not in RUN_MODES:
            raise DeployError(f"--run_mode {self.run_mode!r}: allowed {', '.join(RUN_MODES)}")
        if self.backend != 'paddle' and (device != 'CPU'
                                         or self.run_mode not in ('paddle', 'int8')):
            raise DeployError(f"--backend {self.backend}: runs on CPU only (--device CPU, "
                              "--run_mode paddle or int8)")
        if self.run_mode == 'int8' and self.backend == 'paddle':
            raise DeployError("--run_mode int8: Paddle Inference 3.3.1 has no CPU int8 path for "
                              "PIR exports; quantize the ONNX export (deploy/python/quantize.py) "
                              "and run it with --backend openvino or onnxruntime")
        if self.run_mode.startswith('trt_') and device != 'GPU':
            raise DeployError(f"--run_mode {self.run_mode}: TensorRT needs --device GPU")
        if self.retain_memory and self.backend != 'paddle':
            raise DeployError(f"--retain_memory: Paddle Inference only (--backend {self.backend} "
                              "keeps its buffers between runs already)")
        if self.cpu_threads < 1:
            raise DeployError(f"--cpu_threads {self.cpu_threads}: must be >= 1")
        if self.batch_size < 1:
            raise DeployError(f"--batch_size {self.batch_size}: must be >= 1")
        if self.enable_mkldnn_bfloat16 and not self.enable_mkldnn and self.backend == 'paddle':
            raise DeployError("--enable_mkldnn_bfloat16 needs --enable_mkldnn")
        if self.enable_mkldnn_bfloat16 and not has_bf16():
            raise DeployError("--enable_mkldnn_bfloat16: this CPU has neither AVX512-BF16 nor "
                              "AMX-BF16; run fp32 instead")
        self.device = device
        return self


def _backend_module(name):
    if name == 'paddle':
        from .backends import paddle_inference as module
    elif name == 'onnxruntime':
        from .backends import onnxruntime_backend as module
    else:
        from .backends import openvino_backend as module
    return module


class Predictor:
    """A backend's predictor plus the export's batch limit."""

    def __init__(self, backend, runner, max_batch_size=None):
        self.backend = backend
        self.runner = runner
        self.max_batch_size = max_batch_size

    def get_input_names(self):
        return list(self.runner.input_names)

    def run_arrays(self, inputs):
        step = self.max_batch_size
        count = len(inputs[self.runner.input_names[0]])
        if not step or count <= step:
            return self.runner.run(inputs)
        parts = [self.runner.run({k: v[start:start + step] for k, v in inputs.items()})
                 for start in range(0, count, step)]
        return [_join(arrays) for arrays in zip(*parts)]


def _join(arrays):
    """Concatenate per-slice outputs; pasted masks of different image sizes are zero-padded to
    the largest (deploy crops each image's masks to its own size)."""
    if arrays[0].ndim == 3:
        height = max(a.shape[1] for a in arrays)
        width = max(a.shape[2] for a in arrays)
        arrays = [np.pad(a, ((0, 0), (0, height - a.shape[1]), (0, width - a.shape[2])))
                  for a in arrays]
    return np.concatenate(arrays)


def create_predictor(model: ModelFiles, options: PredictorOptions):
    options.check()
    runner = _backend_module(options.backend).create(model, options)
    return Predictor(options.backend, runner, model.max_batch_size)


class DetectorOutputs(dict):
    """boxes [N, 6] (class, score, x1, y1, x2, y2), boxes_num [B], masks [N, H, W] or None."""


def run_predictor(predictor, inputs):
    """Feed `inputs` (name -> array) and return DetectorOutputs, outputs told apart by rank."""
    for name in predictor.get_input_names():
        if name not in inputs:
            raise DeployError(f"the exported model needs input {name!r}, which preprocessing "
                              f"does not produce (have: {', '.join(inputs)})")
    outputs = DetectorOutputs(boxes=None, boxes_num=None, masks=None)
    for array in predictor.run_arrays(inputs):
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
