"""int8 convolutions on CPUs whose int8 dot product saturates: the weights narrowed to 7 bits.

x86 CPUs without VNNI (AVX2 only, and AVX-512 before VNNI) multiply uint8 activations by int8
weights with VPMADDUBSW, which adds each pair of products into an int16 and saturates at 32767:
with 8-bit weights a pair reaches 2 * 255 * 127 = 64770. ONNX Runtime's and OpenVINO's int8
convolutions both take that path there (measured on an AVX2-only AMD EPYC: a 3x3 convolution of
random 8-bit levels came out up to 13 output levels off in both runtimes, and a quantized Mask
R-CNN's detections moved with it; deploy/README.md, int8 section). With weights of at most 64
in magnitude a pair stays within 2 * 255 * 64 = 32640, the limit ONNX Runtime's quantizer keeps
with `reduce_range`.

`model_int8.onnx` keeps 8-bit weights (exact where the CPU has VNNI, AMX or is not x86). Where
`saturates` finds that the runtime's int8 convolution loses sums on this CPU (a small probe model
whose sums must saturate if anything does; run once per process), each int8 convolution weight
with levels beyond +-64 is narrowed at load time: `W7 = round(W / 2)` with its scale doubled (the
same real weights rounded to 7 bits), and the convolution's int32 bias, which the runtimes read at
`x_scale * w_scale`, is halved with it. The sums are then exact again, at one bit less weight
precision.
"""
import functools

import numpy as np

from .onnx_graph import GraphIndex, dequantized_initializer, remove_unused

NARROW_LEVEL = 64  # |weight level| at most, so that 2 * 255 * NARROW_LEVEL fits an int16
_SUFFIX = '_narrowed'


def _probe():
    """(QDQ model bytes, input, exact output) of one int8 3x3 convolution whose every product is
    255 * 127: each pair of products overflows an int16 if the runtime adds them there."""
    from onnx import TensorProto, helper, numpy_helper
    channels, size = 32, 12
    x_scale, w_scale, y_scale = 1.0 / 255, 1.0 / 127, 2.0
    weight = np.full((channels, channels, 3, 3), 127, np.int8)
    constants = {'w': weight, 'w_scale': np.full(channels, w_scale, np.float32),
                 'w_zero': np.zeros(channels, np.int8),
                 'x_scale': np.array(x_scale, np.float32), 'x_zero': np.array(0, np.uint8),
                 'y_scale': np.array(y_scale, np.float32), 'y_zero': np.array(0, np.uint8)}
    nodes = [helper.make_node('QuantizeLinear', ['x', 'x_scale', 'x_zero'], ['x_q']),
             helper.make_node('DequantizeLinear', ['x_q', 'x_scale', 'x_zero'], ['x_dq']),
             helper.make_node('DequantizeLinear', ['w', 'w_scale', 'w_zero'], ['w_dq'], axis=0),
             helper.make_node('Conv', ['x_dq', 'w_dq'], ['conv'], pads=[1, 1, 1, 1]),
             helper.make_node('QuantizeLinear', ['conv', 'y_scale', 'y_zero'], ['y_q']),
             helper.make_node('DequantizeLinear', ['y_q', 'y_scale', 'y_zero'], ['y'])]
    shape = [1, channels, size, size]
    graph = helper.make_graph(
        nodes, 'int8_saturation_probe',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(value, name) for name, value in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    x = np.ones(shape, np.float32)  # level 255 everywhere
    # an interior output sums 9 * channels products of 1.0 * 1.0: 288, i.e. level 144
    exact = np.float32(9 * channels * 255 * 127 * x_scale * w_scale)
    return model.SerializeToString(), x, exact


def _run_probe(backend, model, x):
    if backend == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(model, options, providers=['CPUExecutionProvider'])
        return session.run(None, {'x': x})[0]
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model, b''), 'CPU',
                                  {'INFERENCE_PRECISION_HINT': 'f32'})
    return compiled(x)[0]


@functools.lru_cache(maxsize=None)
def saturates(backend):
    """True if `backend` ('onnxruntime' or 'openvino') computes an int8 convolution with 8-bit
    weights through int16 pair sums on this CPU (its interior sums come out wrong)."""
    model, x, exact = _probe()
    try:
        y = _run_probe(backend, model, x)
    except Exception:  # the probe cannot run: nothing to tell, the model runs as written
        return False
    interior = y[:, :, 1:-1, 1:-1]
    return not np.allclose(interior, exact, rtol=0.01)


def _dequantized_input(conv, index, dtype, g):
    """(DequantizeLinear node, levels, scale) of input `index` of `conv` if it is a `dtype`
    constant with zero points 0 dequantized by a constant scale; else None."""
    if len(conv.input) <= index or not conv.input[index]:
        return None
    found = dequantized_initializer(conv.input[index], g)
    if found is None or found[1].dtype != dtype or (found[3] is not None and np.any(found[3])):
        return None
    return found[:3]


def _replace(node, index, value, graph, g):
    """Point input `index` of `node` at a new initializer holding `value` (the old one may be
    read elsewhere)."""
    from onnx import numpy_helper
    name = node.input[index] + _SUFFIX
    graph.initializer.append(numpy_helper.from_array(value, name))
    g.values[name] = graph.initializer[-1]
    node.input[index] = name


def rewrite(model):
    """Narrow, in place, every int8 convolution weight of `model` (a QDQ ONNX ModelProto) whose
    levels exceed +-NARROW_LEVEL to 7 bits, rescaling its scale and int32 bias. Returns how many
    convolutions were narrowed."""
    graph = model.graph
    g = GraphIndex(graph)
    narrowed = 0
    for conv in graph.node:
        if conv.op_type not in ('Conv', 'ConvTranspose'):
            continue
        weight = _dequantized_input(conv, 1, np.int8, g)
        if weight is None or np.abs(weight[1].astype(np.int16)).max() <= NARROW_LEVEL:
            continue
        node, levels, scale = weight
        if len(g.consumers.get(node.output[0], [])) != 1:
            continue  # a weight shared with another op keeps its levels
        bias = _dequantized_input(conv, 2, np.int32, g)
        if bias is not None and len(g.consumers.get(bias[0].output[0], [])) != 1:
            continue
        half = np.round(levels.astype(np.float32) / 2).astype(np.int8)   # within [-64, 64]
        _replace(node, 0, half, graph, g)
        _replace(node, 1, (scale.astype(np.float32) * 2).astype(scale.dtype), graph, g)
        if bias is not None:
            bias_node, bias_levels, bias_scale = bias
            _replace(bias_node, 0, np.round(bias_levels.astype(np.float64) / 2).astype(np.int32),
                     graph, g)
            _replace(bias_node, 1, (bias_scale.astype(np.float32) * 2).astype(bias_scale.dtype),
                     graph, g)
        narrowed += 1
    if narrowed:
        remove_unused(graph)  # the 8-bit levels
    return narrowed
