"""ONNX Runtime (CPU execution provider) on the export's `model.onnx`.

Precision: fp32 only. ONNX Runtime's CPU provider has no bf16 kernels, so
--enable_mkldnn_bfloat16 is refused (OpenVINO runs bf16); --enable_mkldnn has no equivalent
here and is ignored (its own MLAS kernels are always used). The fp32 model runs its large 3x3
convolutions in Winograd form unless --winograd False (deploy/python/winograd.py).
"""
from ..errors import DeployError
from .onnx_model import import_optional, load_error, onnx_file, runtime_model


class OnnxRuntimePredictor:

    def __init__(self, session):
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]

    def run(self, inputs):
        try:
            return self.session.run(None, {name: inputs[name] for name in self.input_names})
        except Exception as e:
            raise DeployError(f"inference failed ({str(e).strip().splitlines()[-1][:300]})")


def create(model, options):
    if options.enable_mkldnn_bfloat16:
        raise DeployError("--enable_mkldnn_bfloat16: ONNX Runtime has no bf16 CPU path; use "
                          "--backend openvino or --backend paddle for bf16")
    ort = import_optional('onnxruntime', 'onnxruntime')
    path = onnx_file(model, int8=options.run_mode == 'int8')
    source = runtime_model(path, options, 'ONNX Runtime')
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.cpu_threads
    session_options.inter_op_num_threads = 1
    session_options.log_severity_level = 3  # warnings about unused initializers are noise
    try:
        session = ort.InferenceSession(source, session_options, providers=['CPUExecutionProvider'])
    except Exception as e:
        raise load_error(path, 'ONNX Runtime', e)
    return OnnxRuntimePredictor(session)
