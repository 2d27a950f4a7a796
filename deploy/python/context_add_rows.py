"""ONNX Runtime fp32: GC add's per-image context added to the shortcut a whole row at a time.

In the lean GC add form the residual is `relu(conv(y) + (short + t))` with `t` one value per
channel (`[1, C, 1, 1]`). ONNX Runtime runs the maps in its blocked NCHWc layout
(`[1, C/8, H, W, 8]`), where `t` becomes a block of 8 floats repeated over every position, and
its element-wise kernels do not vectorize that broadcast (its NCHWc transformer says so of Mul):
measured on one thread, `short + t` on a 512 x 100 x 168 map took 32 ms, the same-shape add 3.2
ms. Written `short + rows` with `rows = t` expanded to one row of the map (`[1, C, 1, W]`, W
values per channel), the innermost W x 8 floats of both operands line up and the add runs at the
same-shape speed (3.4 ms). `rows` is a tiny tensor (C x W); a unit-weight depthwise 1x1 conv
after the Expand puts it in the blocked layout (ONNX Runtime keeps an add in that layout only
when both operands are blocked; Expand is not). The row width comes from the conv input `y`,
which the context pooling already reads in the plain layout, so taking its shape costs no
reorder. Exact: the same additions.

The residuals are found by the symbolic shapes the export gives them
(`ppdet_gcnet.deploy.onnx_shapes`, `gc_residual{K}_height`); models exported without them, or
without GC add, are left as they are. Only for ONNX Runtime in fp32: OpenVINO broadcasts per
channel in its own eltwise kernels, and the int8 graph adds in its NHWC requantized form.
"""
import re

import numpy as np

from .onnx_graph import GraphIndex, InitializerWriter, splice

_PREFIX = 'gc_context_rows'
_RESIDUAL_HEIGHT = re.compile(r'^gc_residual\d+_height$')


def _consumers(name, g):
    """The nodes reading `name`, directly or through Identity copies (not the copies)."""
    found = []
    for node in g.consumers.get(name, []):
        found.extend(_consumers(node.output[0], g) if node.op_type == 'Identity' else [node])
    return found


def _annotated_residuals(graph):
    """{tensor name: channels} of the tensors the export annotated as lean GC add residuals."""
    found = {}
    for info in graph.value_info:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and _RESIDUAL_HEIGHT.match(dims[2].dim_param or '') \
                and dims[1].HasField('dim_value'):
            found[info.name] = dims[1].dim_value
    return found


def _context_adds(graph, g):
    """[(add node, index of its `t` input, conv input `y`, channels)] for each lean GC add
    residual `relu(bn(conv(y)) + (short + t))` of `graph`."""
    residuals = _annotated_residuals(graph)
    found = []
    for name, channels in residuals.items():
        add = g.producer.get(name)
        if add is None or add.op_type != 'Add' or len(add.input) != 2:
            continue
        kinds = [getattr(g.source(i), 'op_type', None) for i in add.input]
        shortcut = [k in ('Relu', 'BatchNormalization') for k in kinds]
        if sorted(shortcut) != [False, True]:
            continue
        # the residual's other side: bn(conv(y)), annotated with the same shape
        outer = [c for c in _consumers(name, g) if c.op_type == 'Add']
        if len(outer) != 1:
            continue
        other = [i for i in outer[0].input if g.source(i) is not add]
        norm = g.source(other[0]) if len(other) == 1 else None
        conv = g.source(norm.input[0]) if norm is not None and \
            norm.op_type == 'BatchNormalization' else None
        if conv is None or conv.op_type != 'Conv':
            continue
        found.append((add, shortcut.index(False), conv.input[0], channels))
    return found


def rewrite(model):
    """Add every lean GC add context of `model` (an fp32 onnx ModelProto) as rows, in place.
    Returns how many were rewritten."""
    from onnx import helper
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), default=0)
    if opset < 15:  # Shape's start / end
        return 0
    g = GraphIndex(graph)
    adds = _context_adds(graph, g)
    if not adds:
        return 0
    w = InitializerWriter(graph, _PREFIX)
    leading = w.ints('leading_ones', [1, 1, 1])
    replacing = {}  # add node -> the nodes computing its rows, then the add
    for index, (add, t_index, y, channels) in enumerate(adds):
        tag = f'{_PREFIX}/{index}'
        unit = w.constant(f'{_PREFIX}/unit_{channels}',
                          np.ones((channels, 1, 1, 1), np.float32))
        replacing[id(add)] = [
            helper.make_node('Shape', [y], [f'{tag}/y_shape'], start=3, end=4),
            helper.make_node('Concat', [leading, f'{tag}/y_shape'], [f'{tag}/row_shape'],
                             axis=0),
            # [1, C, 1, 1] -> [1, C, 1, W]
            helper.make_node('Expand', [add.input[t_index], f'{tag}/row_shape'],
                             [f'{tag}/rows']),
            helper.make_node('Conv', [f'{tag}/rows', unit], [f'{tag}/rows_blocked'],
                             group=channels, kernel_shape=[1, 1]),
            add,
        ]
        add.input[t_index] = f'{tag}/rows_blocked'
    splice(graph, replacing)
    return len(adds)
