"""GC channel_mul for int8: the per-image channel scale taken back out of a conv's weights.

The one-image ONNX form of the lean GC block (ppdet_gcnet.deploy.onnx_forms.gc_mul) multiplies
the last conv's weights by the channel scale `s`, so that the conv fuses the residual add in fp32.
To a quantizer those weights are a run-time tensor: it quantizes them per tensor, like an
activation (a channel with a small `s` keeps few of its 256 levels), and the runtimes run that
conv in floating point (800x1344, one thread: GC mul / control 1.07 in ONNX Runtime, 1.15 in
OpenVINO). In the int8 model only, `conv(y, W * s)` is written back
as `conv(y, W) * s`: W is constant again and quantized per output channel, and the multiply, a
map by a [1, C, 1, 1] vector with `s` in (0, 1), is quantized too (ONNX Runtime: QLinearMul).
"""
import numpy as np
import onnx
from onnx import numpy_helper

_ROW = '_channel_scale_row'


def inferred_shapes(model):
    """{tensor name: its dims (None where unknown)} for the tensors ONNX shape inference types
    in `model` (graph inputs, outputs and intermediate values)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in (list(inferred.graph.value_info) + list(inferred.graph.input)
                  + list(inferred.graph.output)):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField('dim_value') else None for d in dims]
    return shapes


def _scaled_bias(conv, scale, channels, graph_maps):
    """For `conv` (weights scaled by `scale`) feeding `relu(conv + (short + b * u))`, u the
    tensor `scale` is a [C, 1, 1, 1] view of and b a constant [C], C = `channels` (the
    one-image form's bias joining the shortcut), return (b, the outer add, the nodes computing
    `short + b * u`, short); else None."""
    producer, consumers, uses, dims = graph_maps
    view = producer.get(scale)
    outer = consumers.get(conv.output[0], [])
    if view is None or view.op_type != 'Reshape' or len(outer) != 1 or outer[0].op_type != 'Add':
        return None
    outer = outer[0]
    source = view.input[0]
    other = outer.input[1] if outer.input[0] == conv.output[0] else outer.input[0]
    inner = producer.get(other)
    if inner is None or inner.op_type != 'Add' or uses.get(other) != 1:
        return None
    for side in (0, 1):
        row = producer.get(inner.input[side])
        if row is None or row.op_type != 'Reshape' or uses.get(row.output[0]) != 1:
            continue
        multiply = producer.get(row.input[0])
        if multiply is None or multiply.op_type != 'Mul' or uses.get(multiply.output[0]) != 1:
            continue
        bias = [name for name in multiply.input if name != source]
        if len(bias) == 1 and source in multiply.input and dims.get(bias[0]) == [channels]:
            return bias[0], outer, [inner, row, multiply], inner.input[1 - side]
    return None


def scale_after_conv(model):
    """Rewrite, in place, every bias-free `Conv(y, Mul(W, s))` with W a constant [C, ...] weight
    and s a run-time [C, 1, 1, 1] tensor used by that conv alone into `Mul(Conv(y, W), s')`, s'
    the [1, C, 1, 1] view of s (a [C, 1, 1, 1] dim the shape inference leaves open is taken to
    be C, the only size that broadcasts against W but 1). Where the conv feeds
    `conv + (short + b * u)`, s a view of u and b a constant (channel_mul alone), b goes back
    into the conv: `conv(y, W, b) * s' + short`, one broadcast add less. Returns the names of
    the multiplies written and of the residual adds whose bias term was folded."""
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    weight_dims = {init.name: list(init.dims) for init in graph.initializer}
    shapes = inferred_shapes(model)
    producer = {out: node for node in graph.node for out in node.output}
    consumers = {}
    uses = {output.name: 1 for output in graph.output}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
            consumers.setdefault(name, []).append(node)
    rewrites = {}  # conv name -> (weight mul, constant weight, scale, folded bias or None)
    for conv in graph.node:
        if conv.op_type != 'Conv' or len(conv.input) != 2 or uses.get(conv.input[1]) != 1:
            continue
        mul = producer.get(conv.input[1])
        if mul is None or mul.op_type != 'Mul':
            continue
        weight = [name for name in mul.input if name in constants]
        if len(weight) != 1 or len(weight_dims[weight[0]]) != 4:
            continue
        dims = weight_dims[weight[0]]
        scale = mul.input[1] if mul.input[0] == weight[0] else mul.input[0]
        shape = shapes.get(scale) or []
        if len(shape) != 4 or shape[1:] != [1, 1, 1] or shape[0] not in (None, 1, dims[0]):
            continue
        bias = _scaled_bias(conv, scale, dims[0], (producer, consumers, uses, weight_dims))
        rewrites[conv.name] = (mul, weight[0], scale, bias)
    if not rewrites:
        return []
    graph.initializer.append(numpy_helper.from_array(np.array([1, -1, 1, 1], np.int64), _ROW))
    dropped = {mul.name for mul, _, _, _ in rewrites.values()}
    shortcut_of = {}  # outer add name -> the shortcut it now adds directly
    for _, _, _, bias in rewrites.values():
        if bias is not None:
            dropped.update(node.name for node in bias[2])
            shortcut_of[bias[1].name] = bias
    rebuilt, written = [], []
    for node in graph.node:
        if node.name in dropped:
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)  # detached: the graph's own list is cleared below
        if node.name in shortcut_of:
            _, _, (inner, _, _), short = shortcut_of[node.name]
            copy.input[:] = [short if name == inner.output[0] else name for name in node.input]
            written.append(node.name)
        if node.name not in rewrites:
            rebuilt.append(copy)
            continue
        _, weight, scale, bias = rewrites[node.name]
        unscaled, row = node.output[0] + '_unscaled', scale + '_row'
        copy.input[:] = [node.input[0], weight] + ([bias[0]] if bias else [])
        copy.output[:] = [unscaled]
        reshape = onnx.helper.make_node('Reshape', [scale, _ROW], [row], name=row)
        multiply = onnx.helper.make_node('Mul', [unscaled, row], [node.output[0]],
                                         name=node.output[0] + '_scaled')
        rebuilt += [copy, reshape, multiply]
        written.append(multiply.name)
    del graph.node[:]
    graph.node.extend(rebuilt)
    return written
