"""OpenVINO (CPU plugin) on the export's `model.onnx` (OpenVINO cannot read Paddle 3's PIR
`model.json`).

Deformable convolution (the DCN configs): OpenVINO 2026.4's ONNX reader has no DeformConv, so
this backend registers a conversion of it to OpenVINO's own DeformableConvolution (opset 8,
modulated, zero padding for the bilinear samples as ONNX and Paddle define it).

Precision: OpenVINO picks bf16 by itself on CPUs with AMX; here fp32 is explicit
(`INFERENCE_PRECISION_HINT: f32`) unless --enable_mkldnn_bfloat16 asks for bf16 (which needs
AVX512-BF16 or AMX, as oneDNN bf16 does). The fp32 model runs its large 3x3 convolutions in
Winograd form unless --winograd False (deploy/python/winograd.py); bf16 and int8 run direct.

Input shapes: the export takes any image size, and OpenVINO compiled for dynamic sizes cannot
tell that two tensors of the graph have the same shape, so it leaves some residual adds out of
their convolutions (in the int8 GC add model, the residual add of every GC bottleneck: 26 add
passes instead of 13) and reorders more. Compiled for one known input shape it fuses them, so
each of the first SPECIALISED_SHAPES distinct input shapes gets a copy compiled for that shape
(a few seconds, once per shape); other shapes run the dynamic model, compiled when first needed.
A stream of same-size images runs the specialised copy from its first image on.
"""
from ..errors import DeployError
from .onnx_model import import_optional, load_error, onnx_file, runtime_model

# How many input shapes get a model compiled for them (each holds its own copy of the weights).
SPECIALISED_SHAPES = 2


class OpenVinoPredictor:

    def __init__(self, core, model, config, path):
        self.core, self.model, self.config, self.path = core, model, config, path
        self.input_names = [port.get_any_name() for port in model.inputs]
        self.specialised = {}       # input shapes -> (compiled model, infer request)
        self.dynamic = None

    def _compile(self, shapes=None):
        model = self.model
        try:
            if shapes is not None:
                model = self.model.clone()
                model.reshape(dict(zip(self.input_names, (list(s) for s in shapes))))
            compiled = self.core.compile_model(model, 'CPU', self.config)
        except Exception as e:
            raise load_error(self.path, 'OpenVINO', e)
        return compiled, compiled.create_infer_request()

    def _runner(self, shapes):
        if shapes in self.specialised:
            return self.specialised[shapes]
        if len(self.specialised) < SPECIALISED_SHAPES:
            self.specialised[shapes] = self._compile(shapes)
            return self.specialised[shapes]
        if self.dynamic is None:
            self.dynamic = self._compile()
        return self.dynamic

    def run(self, inputs):
        feed = {name: inputs[name] for name in self.input_names}
        compiled, request = self._runner(tuple(tuple(feed[n].shape) for n in self.input_names))
        try:
            results = request.infer(feed)
        except Exception as e:
            raise DeployError(f"inference failed ({str(e).strip().splitlines()[-1][:300]})")
        return [results[port] for port in compiled.outputs]


def _deform_conv(node):
    """ONNX DeformConv (X, W, offset, B, mask) -> OpenVINO DeformableConvolution-8 (+ bias)."""
    import numpy as np
    import openvino.opset8 as ops
    inputs = [node.get_input(i) for i in range(node.get_input_size())]
    data, weights, offsets = inputs[:3]
    bias = inputs[3] if len(inputs) > 3 else None
    mask = inputs[4] if len(inputs) > 4 else None
    pads = list(node.get_attribute('pads', [0, 0, 0, 0]))
    out = ops.deformable_convolution(
        data, offsets, weights, strides=list(node.get_attribute('strides', [1, 1])),
        pads_begin=pads[:2], pads_end=pads[2:],
        dilations=list(node.get_attribute('dilations', [1, 1])), mask=mask,
        group=int(node.get_attribute('group', 1)),
        deformable_group=int(node.get_attribute('offset_group', 1)),
        bilinear_interpolation_pad=True)
    if bias is not None:
        out = ops.add(out, ops.reshape(bias, ops.constant(np.array([1, -1, 1, 1], np.int64)),
                                       False))
    return [out.output(0)]


def read_model(core, path, source):
    """`source` (the ONNX file `path`, or the bytes of a model made from it: runtime_model) as an
    OpenVINO model (DeformConv converted); one-line errors naming `path`."""
    try:
        from openvino.frontend.onnx import ConversionExtension
        core.add_extension(ConversionExtension('DeformConv', _deform_conv))
        return core.read_model(source)
    except Exception as e:
        if 'DeformConv' in str(e):
            raise DeployError(f"{path}: OpenVINO cannot read ONNX DeformConv (the deformable "
                              "convolutions of DCN models); use --backend onnxruntime or paddle")
        raise load_error(path, 'OpenVINO', e)


def create(model, options):
    ov = import_optional('openvino', 'openvino')
    path = onnx_file(model, int8=options.run_mode == 'int8')
    source = runtime_model(path, options, 'OpenVINO')
    config = {'INFERENCE_PRECISION_HINT': 'bf16' if options.enable_mkldnn_bfloat16 else 'f32',
              'INFERENCE_NUM_THREADS': options.cpu_threads}
    core = ov.Core()
    return OpenVinoPredictor(core, read_model(core, path, source), config, path)
