"""GC channel_mul in ONNX Runtime int8: the gate applied by the convolution's requantization.

In the int8 model (deploy/python/int8_channel_scale.py) a GC mul block's last convolution is
`Q(conv(y, W, b) * s)`, s the block's per-channel gate ([1, C, 1, 1], computed per image): ONNX
Runtime runs it as a QLinearConv into an 8-bit map, then a QLinearMul that reads and writes that
whole map again (per image at 800x1344: 13 blocks, about 14 ms of the control's 1.1 s).
QLinearConv already multiplies every output channel by a factor when it requantizes its int32
sums, `x_scale * w_scale[c] / y_scale`, and ONNX Runtime reads `w_scale` per run, not only when it
is a constant. So the gate becomes part of the weight scale, `w_scale[c] * s[c]` (a [C] multiply
per run), and the block's conv writes the gated map straight away:

    QLinearConv(x_q, x_scale, x_zero, W_q, w_scale * s, w_zero, y_scale, y_zero, b_q)

with `y_scale, y_zero` those of the gated map; the int32 bias is quantized at
`x_scale * w_scale`, so it is gated too, as in `conv(y, W, b) * s`. It is also one rounding
fewer than quantizing the conv's output before the multiply. The model must take one image per
run (the ONNX exports do): one weight scale serves the whole batch.

Only ONNX Runtime's int8 model is rewritten, at load time: OpenVINO runs an int8 convolution only
where its scales are constant.
"""
import numpy as np

from .onnx_graph import GraphIndex, attributes, dequantized_initializer, remove_unused

_PREFIX = 'gate_in_requantization'


def _quantize_dequantize(name, g):
    """(x, the QuantizeLinear, the DequantizeLinear) if `name` is
    DequantizeLinear(QuantizeLinear(x)) with one scale and zero point, each node's output read
    by the next alone; else None."""
    dequantize = g.producer.get(name)
    if dequantize is None or dequantize.op_type != 'DequantizeLinear':
        return None
    quantize = g.producer.get(dequantize.input[0])
    if (quantize is None or quantize.op_type != 'QuantizeLinear'
            or g.only_consumer(quantize.output[0]) is not dequantize
            or list(quantize.input[1:]) != list(dequantize.input[1:])):
        return None
    return quantize.input[0], quantize, dequantize


def _dequantized_constant(name, g):
    """(quantized value name, scale, zero point name, axis) if `name` is a DequantizeLinear of an
    initializer with constant scale and zero point; else None."""
    found = dequantized_initializer(name, g)
    if found is None or found[3] is None:
        return None
    node = found[0]
    return node.input[0], found[2], node.input[2], attributes(node).get('axis', 1)


def _is_channel_vector(name, channels, g, shapes):
    """`name` holds one value per channel of one image: a Reshape to the constant shape
    [1, channels, 1, 1] (or [1, -1, 1, 1], as int8_channel_scale writes the gate), or
    [1, channels, 1, 1] by ONNX shape inference (`shapes()`, run only when needed: it costs a
    pass over the whole model)."""
    node = g.producer.get(name)
    target = g.constant(node.input[1]) if node is not None and node.op_type == 'Reshape' else None
    if target is not None and list(target) in ([1, channels, 1, 1], [1, -1, 1, 1]):
        return True
    return shapes().get(name) == [1, channels, 1, 1]


def _gated_conv(mul, g, shapes):
    """The pieces of `Q(DQ(Q(conv)) * s)` at the Mul `mul`, conv an int8 QDQ Conv and s one
    factor per output channel: a dict, or None if `mul` is not such a gate."""
    requantize = g.only_consumer(mul.output[0])
    if requantize is None or requantize.op_type != 'QuantizeLinear':
        return None
    if g.constant(requantize.input[1]) is None or g.constant(requantize.input[1]).size != 1:
        return None
    for side in (0, 1):
        conv_q = _quantize_dequantize(mul.input[side], g)
        if conv_q is None or g.only_consumer(mul.input[side]) is not mul:
            continue
        conv = g.producer.get(conv_q[0])
        if (conv is None or conv.op_type != 'Conv' or len(conv.input) < 2
                or g.only_consumer(conv.output[0]) is not conv_q[1]):
            continue
        x = g.producer.get(conv.input[0])
        weight = _dequantized_constant(conv.input[1], g)
        if x is None or x.op_type != 'DequantizeLinear' or weight is None:
            continue
        x_scale = g.constant(x.input[1])
        if x_scale is None or x_scale.size != 1 or len(x.input) != 3:
            continue
        channels = g.values[weight[0]].dims[0]
        if weight[1].size not in (1, channels) or (weight[1].size > 1 and weight[3] != 0):
            continue  # per-channel scales along another axis than the output channels
        w_scale = np.broadcast_to(weight[1].astype(np.float64).reshape(-1), (channels,))
        bias = None
        if len(conv.input) > 2 and conv.input[2]:
            bias = g.constant(conv.input[2])  # fp32 bias
            quantized = _dequantized_constant(conv.input[2], g)
            if quantized is not None:
                bias = g.constant(quantized[0]).astype(np.float64) * quantized[1]
            if bias is None or bias.size != channels:
                continue
        # the gate: its fp32 value, before the quantizer's own QuantizeLinear/DequantizeLinear
        gate = mul.input[1 - side]
        gate_q = _quantize_dequantize(gate, g)
        if gate_q is not None:
            gate = gate_q[0]
        if not _is_channel_vector(gate, channels, g, shapes):
            continue
        return {'conv': conv, 'x': x, 'weight': weight, 'w_scale': w_scale,
                'x_scale': float(x_scale.reshape(())), 'bias': bias, 'requantize': requantize,
                'gate': gate,
                'dropped': [conv, conv_q[1], conv_q[2], mul, requantize]}
    return None


def _requantizing_conv(found, tag, graph):
    """The nodes (and initializers, appended to `graph`) computing the gated int8 map."""
    from onnx import helper, numpy_helper
    conv, x, requantize = found['conv'], found['x'], found['requantize']
    w_scale = found['w_scale']
    initializers = {f'{tag}/flat': np.array([-1], np.int64),
                    f'{tag}/w_scale': w_scale.astype(np.float32)}
    bias = []
    if found['bias'] is not None:
        # int32 at x_scale * w_scale, as QLinearConv reads its bias
        quantized = np.round(found['bias'].reshape(-1) / (found['x_scale'] * w_scale))
        initializers[f'{tag}/bias'] = np.clip(quantized, -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        bias = [f'{tag}/bias']
    graph.initializer.extend(numpy_helper.from_array(value, name)
                             for name, value in initializers.items())
    gate, scale = f'{tag}/gate', f'{tag}/gated_w_scale'
    weight_zero = found['weight'][2]
    y_scale, y_zero = requantize.input[1], requantize.input[2]
    kept = {k: v for k, v in attributes(conv).items()
            if k in ('auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides')}
    return [helper.make_node('Reshape', [found['gate'], f'{tag}/flat'], [gate],
                             name=f'{tag}/gate'),
            helper.make_node('Mul', [f'{tag}/w_scale', gate], [scale], name=scale),
            helper.make_node('QLinearConv', [x.input[0], x.input[1], x.input[2],
                                             found['weight'][0], scale, weight_zero,
                                             y_scale, y_zero] + bias,
                             [requantize.output[0]], name=f'{tag}/conv', **kept)]


def rewrite(model):
    """Rewrite, in place, every gated int8 convolution of `model` (a QDQ ONNX ModelProto) into a
    QLinearConv whose weight scale carries the gate. Returns how many were rewritten."""
    import functools

    from .int8_channel_scale import inferred_shapes
    graph = model.graph
    g = GraphIndex(graph)
    shapes = functools.lru_cache(maxsize=None)(lambda: inferred_shapes(model))
    replaced = {}  # id of the requantize node -> the nodes replacing the gated conv
    dropped = set()
    for node in graph.node:
        if node.op_type != 'Mul' or id(node) in dropped:
            continue
        found = _gated_conv(node, g, shapes)
        if found is None or any(id(n) in dropped for n in found['dropped']):
            continue
        dropped.update(id(n) for n in found['dropped'])
        replaced[id(found['requantize'])] = _requantizing_conv(
            found, f'{_PREFIX}/{len(replaced)}', graph)
    if not replaced:
        return 0
    nodes = []
    for node in graph.node:
        # the gate and the conv's input are computed before the requantize node: insert there
        nodes.extend(replaced.get(id(node), []))
        if id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    remove_unused(graph)
    return len(replaced)
