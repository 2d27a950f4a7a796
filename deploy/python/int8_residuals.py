"""GC residuals reordered for int8: `relu((x + shortcut) + t)`, the context term added last.

A GC bottleneck ends in `relu(x + t + shortcut)`, `x` the last conv's output, `t` the block's
per-channel context term ([N, C, 1, 1]). The exports add `t` first: `relu(conv + (shortcut + t))`
in the lean form (so that the conv fuses the residual add, ppdet_gcnet.deploy.lean_gc) and
`relu((x + t) + shortcut)` in the original one. Quantized, ONNX Runtime runs an add whose inputs
are dequantized and whose output is quantized as one QLinearAdd on uint8 maps, which is how the
control's residuals run; GC's residual add instead receives the fp32 sum with `t` and runs in
fp32 between dequantize and quantize nodes: five full-map passes where the control has one (ONNX
Runtime profile, one thread: +115 ms of the control's 1.96 s). With `t` added last, the residual
add is the control's QLinearAdd again and `+ t`, quantized as well, a second one broadcasting `t`.

Only the int8 model is rewritten (deploy/python/quantize.py): the fp32 `model.onnx` keeps the
order that lets the runtimes fuse the add into the convolution.
"""
import os

import onnx

from deploy.python.int8_channel_scale import inferred_shapes, scale_after_conv


def _spatial_dims(model):
    """{tensor name: its last two dims (None where unknown)} for the 4-D tensors of `model`."""
    return {name: dims[2:] for name, dims in inferred_shapes(model).items() if len(dims) == 4}


def add_context_last(model):
    """Rewrite, in place, every `relu(a + (b + c))` whose three operands are two feature maps and
    one [N, C, 1, 1] vector into `relu((map + map) + vector)`. Returns the names of the adds that
    now add the vector (all such adds, including ones already in that order)."""
    spatial = _spatial_dims(model)

    def is_vector(name):
        return spatial.get(name) == [1, 1]

    def is_map(name):
        return name in spatial and spatial[name] != [1, 1]

    nodes = list(model.graph.node)
    producer = {out: node.name for node in nodes for out in node.output}
    by_name = {node.name: node for node in nodes}
    uses = {output.name: 1 for output in model.graph.output}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    context_adds, reordered = [], {}  # reordered: outer add's name -> (inner, new inputs)
    for relu in [node for node in nodes if node.op_type == 'Relu']:
        outer = by_name.get(producer.get(relu.input[0]))
        if outer is None or outer.op_type != 'Add' or uses[outer.output[0]] != 1:
            continue
        for side in (0, 1):
            inner = by_name.get(producer.get(outer.input[side]))
            if inner is None or inner.op_type != 'Add' or uses[inner.output[0]] != 1:
                continue
            other = outer.input[1 - side]
            operands = [other, *inner.input]
            vectors = [name for name in operands if is_vector(name)]
            maps = [name for name in operands if is_map(name)]
            if len(vectors) != 1 or len(maps) != 2:
                continue
            if other != vectors[0]:
                reordered[outer.name] = (inner.name, maps, [inner.output[0], vectors[0]])
            context_adds.append(outer.name)
            break
    if reordered:
        moved = {inner for inner, _, _ in reordered.values()}
        rebuilt = []
        for node in nodes:
            if node.name in moved:
                continue  # emitted right before its outer add, whose inputs it now reads
            if node.name in reordered:
                inner_name, inner_inputs, outer_inputs = reordered[node.name]
                inner = onnx.NodeProto()
                inner.CopyFrom(by_name[inner_name])
                inner.input[:] = inner_inputs
                outer = onnx.NodeProto()
                outer.CopyFrom(node)
                outer.input[:] = outer_inputs
                rebuilt += [inner, outer]
            else:
                copy = onnx.NodeProto()
                copy.CopyFrom(node)  # detached: the graph's own list is cleared below
                rebuilt.append(copy)
        del model.graph.node[:]
        model.graph.node.extend(rebuilt)
    return context_adds


def rewrite_file(path):
    """The int8 rewrites of GC blocks on the ONNX file at `path` (replaced by write-then-rename
    when something changed): `scale_after_conv` (int8_channel_scale), then `add_context_last`.
    Returns the rewritten model and the names of the nodes they leave for the quantizer: the
    scale multiplies, the context adds and the relus right after those (quantized, a relu is
    folded into its input's quantization; left out, it would cost a dequantize + quantize pass
    over the block's output map)."""
    model = onnx.load(path)
    gc_nodes = scale_after_conv(model)
    gc_nodes += add_context_last(model)
    named = set(gc_nodes)
    gc_outputs = {out for node in model.graph.node if node.name in named for out in node.output}
    gc_nodes += [node.name for node in model.graph.node
                 if node.op_type == 'Relu' and node.input[0] in gc_outputs]
    if gc_nodes:
        partial = path + '.partial'
        onnx.save(model, partial)
        os.replace(partial, path)
    return model, gc_nodes


def quantized_nodes(graph, op_types, gc_nodes):
    """What the quantizer should quantize in `graph`: every node of `op_types` and the
    `gc_nodes`; None (its default: every node of the quantized types) without GC nodes."""
    if not gc_nodes:
        return None
    return [node.name for node in graph.node if node.op_type in op_types] + list(gc_nodes)


def quantized_op_types(graph, op_types, gc_nodes):
    """`op_types` and the op types of the `gc_nodes` (the quantizer's op filter)."""
    named = set(gc_nodes)
    extra = {node.op_type for node in graph.node if node.name in named}
    return list(op_types) + sorted(extra - set(op_types))
