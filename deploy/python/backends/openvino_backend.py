"""OpenVINO (CPU plugin) on the export's `model.onnx` (OpenVINO cannot read Paddle 3's PIR
`model.json`).

Models with deformable convolution (DCN) do not load: OpenVINO 2026.4 reads no ONNX DeformConv.

Precision: OpenVINO picks bf16 by itself on CPUs with AMX; here fp32 is explicit
(`INFERENCE_PRECISION_HINT: f32`) unless --enable_mkldnn_bfloat16 asks for bf16 (which needs
AVX512-BF16 or AMX, as oneDNN bf16 does).
"""
from ..errors import DeployError
from .onnx_model import import_optional, load_error, onnx_file


class OpenVinoPredictor:

    def __init__(self, compiled):
        self.compiled = compiled
        self.input_names = [port.get_any_name() for port in compiled.inputs]
        self.request = compiled.create_infer_request()

    def run(self, inputs):
        try:
            results = self.request.infer({name: inputs[name] for name in self.input_names})
        except Exception as e:
            raise DeployError(f"inference failed ({str(e).strip().splitlines()[-1][:300]})")
        return [results[port] for port in self.compiled.outputs]


def create(model, options):
    ov = import_optional('openvino', 'openvino')
    path = onnx_file(model, int8=options.run_mode == 'int8')
    config = {'INFERENCE_PRECISION_HINT': 'bf16' if options.enable_mkldnn_bfloat16 else 'f32',
              'INFERENCE_NUM_THREADS': options.cpu_threads}
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), 'CPU', config)
    except Exception as e:
        if 'DeformConv' in str(e):
            raise DeployError(f"{path}: OpenVINO cannot read ONNX DeformConv (the deformable "
                              "convolutions of DCN models); use --backend onnxruntime or paddle")
        raise load_error(path, 'OpenVINO', e)
    return OpenVinoPredictor(compiled)
