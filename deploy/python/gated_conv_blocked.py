"""ONNX Runtime fp32: GC mul's residual added in the blocked layout again.

The one-image ONNX form of a GC mul block (ppdet_gcnet.deploy.onnx_forms.gc_mul) is
`relu(conv(y, W * s) + (short + b))`, W * s the last conv's weights scaled by the image's gate
and b one run-time value per channel. ONNX Runtime runs convolutions in its blocked NCHWc layout
only with constant weights, so this conv runs plain, and everything around it follows: the
shortcut is reordered out of the blocked layout for `short + b`, the residual add and the relu
are two more plain passes over the map, and the block's output is reordered back for the next
convs (2 threads, 800x1344: reorders +16 to +20 ms, adds +13 to +16 ms of about 2.6 s). At
load the block is written

    relu(unit(conv(y, W * s, b)) + short)

b as the plain conv's bias (ONNX Runtime's plain conv takes a run-time one) and `unit` a
depthwise 1x1 conv with constant weights of one: a blocked conv, into which ONNX Runtime fuses
the residual add (the shortcut stays blocked) and the relu, as it does the control's. Both
inputs of that add get one symbolic shape in `value_info`, which ONNX Runtime needs to fuse it
(as for GC add: ppdet_gcnet.deploy.onnx_shapes). What remains of the gate is the plain conv and
one reorder of its output. The same sums but for one regrouping, `(conv + b) + short` for
`conv + (short + b)`.

Only for ONNX Runtime fp32: OpenVINO keeps a conv with a run-time bias unfused, and the int8
model has its own gate rewrite (int8_gate_scale).
"""
import numpy as np

from .onnx_graph import (GraphIndex, InitializerWriter, image_batch_dim, remove_unused,
                         splice)

_PREFIX = 'gc_gated_conv_blocked'


def _channel_vector(name, g):
    """The 1-D tensor `name` is a [1, C, 1, 1] view of (Reshape to [1, -1, 1, 1]), else None."""
    view = g.source(name)
    if view is None or view.op_type != 'Reshape' or g.constant(view.input[1]) is None \
            or list(g.constant(view.input[1])) != [1, -1, 1, 1]:
        return None
    return view.input[0]


def _gated_residuals(graph, g):
    """[(conv, channels, bias vector, short, outer add, index of its conv side)] for each
    `relu(conv(y, W * s) + (short + b))` of `graph`, W a constant [C, Cin, 1, 1]."""
    found = []
    for relu in graph.node:
        outer = g.source(relu.input[0]) if relu.op_type == 'Relu' else None
        if outer is None or outer.op_type != 'Add' or len(outer.input) != 2:
            continue
        sides = [g.source(name) for name in outer.input]
        kinds = [getattr(node, 'op_type', None) for node in sides]
        if sorted(kinds, key=str) != ['Add', 'Conv']:
            continue
        conv, inner = sides[kinds.index('Conv')], sides[kinds.index('Add')]
        scaled = g.source(conv.input[1]) if len(conv.input) == 2 else None
        if scaled is None or scaled.op_type != 'Mul':
            continue
        weights = [g.constant(name) for name in scaled.input]
        weights = [w for w in weights if w is not None and w.ndim == 4 and w.shape[2:] == (1, 1)]
        if len(weights) != 1:
            continue
        for side in (0, 1):
            bias = _channel_vector(inner.input[side], g)
            if bias is not None:
                found.append((conv, weights[0].shape[0], bias, inner.input[1 - side], outer,
                              kinds.index('Conv')))
                break
    return found


def rewrite(model):
    """Rewrite every one-image GC mul residual of `model` (an fp32 onnx ModelProto) as above, in
    place. Returns how many were rewritten."""
    from onnx import TensorProto, helper
    graph = model.graph
    g = GraphIndex(graph)
    residuals = _gated_residuals(graph, g)
    if not residuals:
        return 0
    w = InitializerWriter(graph, _PREFIX)
    batch = image_batch_dim(graph)
    replacing = {}  # plain conv -> itself and the unit conv that follows it
    shapes = {}  # the residual add's inputs -> their one symbolic shape
    for index, (conv, channels, bias, short, outer, conv_side) in enumerate(residuals):
        tag = f'{_PREFIX}/{index}'
        unit = w.constant(f'{_PREFIX}/unit_{channels}', np.ones((channels, 1, 1, 1), np.float32))
        blocked = conv.output[0]
        conv.input.append(bias)
        conv.output[0] = f'{tag}/plain'
        replacing[id(conv)] = [conv, helper.make_node('Conv', [f'{tag}/plain', unit], [blocked],
                                                      group=channels, kernel_shape=[1, 1])]
        outer.input[1 - conv_side] = short  # the inner `short + b` is left unread
        for name in (outer.input[0], outer.input[1], blocked):
            shapes[name] = [batch, channels, f'{tag}/height', f'{tag}/width']
    splice(graph, replacing)
    kept = [info for info in graph.value_info if info.name not in shapes]
    del graph.value_info[:]
    graph.value_info.extend(kept + [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
                                    for name, shape in shapes.items()])
    remove_unused(graph)
    return len(residuals)
