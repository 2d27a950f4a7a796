"""Small hand-built ONNX graphs for the rewrite tests: building one, and running it in ONNX
Runtime."""
from onnx import helper


def small_model(nodes, name, inputs, outputs, initializers):
    """An opset-16 model of `nodes` (IR version 8: every ONNX Runtime of the test set-up reads
    it)."""
    model = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, initializers),
                              opset_imports=[helper.make_opsetid('', 16)])
    model.ir_version = 8
    return model


def run(model, feed):
    """`model`'s outputs on `feed`, in ONNX Runtime's CPU provider."""
    import onnxruntime
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=['CPUExecutionProvider'])
    return session.run(None, feed)
