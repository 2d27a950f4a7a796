"""FPN's 2x nearest upsampling as one ONNX `Resize` in `model.onnx`.

The Paddle export writes the FPN's top-down upsampling as unsqueeze -> expand -> two flattens
(`ppdet_gcnet.deploy.onednn_safe.upsample_nearest_2x`: Paddle Inference's oneDNN path cannot run
`nearest_interp`). paddle2onnx converts that literally, and in the ONNX runtimes it is slow:
ONNX Runtime runs the 6-D `Expand` on the plain layout, with reorders from and back to its blocked
conv layout around it, and OpenVINO turns it into a broadcast multiply (together 0.15-0.2 s per
800x1344 image on one thread, about 3 % of the whole model, for copying three feature maps).
Both runtimes have a kernel for the same function: `Resize` with nearest mode, asymmetric
coordinates, floor rounding and scales [1, 1, 2, 2] sets `out[i, j] = in[i // 2, j // 2]`, which
is what the expand computes (each pixel copied into a 2x2 block), in any input size. ONNX
Runtime runs it in its blocked layout (its NCHWc `Upsample`), OpenVINO as `Interpolate`.

`use_resize_for_nearest_upsampling(model)` finds the converted pattern exactly as paddle2onnx
writes it (anything else is left alone) and puts one `Resize` in its place.
"""
import numpy as np

SCALES = 'nearest_upsample_2x_scales'


def _constants(graph):
    from onnx import numpy_helper
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Constant' and node.attribute and node.attribute[0].name == 'value':
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


class _Graph:
    def __init__(self, graph):
        self.producers = {out: node for node in graph.node for out in node.output}
        self.constants = _constants(graph)

    def source(self, name):
        """The producer of `name`, through Identity copies."""
        node = self.producers.get(name)
        while node is not None and node.op_type == 'Identity':
            node = self.producers.get(node.input[0])
        return node

    def constant(self, name):
        node = self.source(name)
        if node is None:
            return self.constants.get(name)
        return self.constants.get(node.output[0]) if node.op_type == 'Constant' else None

    def is_(self, name, op_type):
        node = self.source(name)
        return node is not None and node.op_type == op_type

    def shape_slice(self, name, of, start, end):
        """`name` is Slice(Shape(`of`), [start], [end], axes [0])."""
        node = self.source(name)
        if node is None or node.op_type != 'Slice' or len(node.input) < 4:
            return False
        shape = self.source(node.input[0])
        return (shape is not None and shape.op_type == 'Shape' and shape.input[0] == of
                and _equal(self.constant(node.input[1]), [start])
                and _equal(self.constant(node.input[2]), [end])
                and _equal(self.constant(node.input[3]), [0]))


def _equal(value, expected):
    return value is not None and np.asarray(value).tolist() == expected


def _upsampled_input(g, final):
    """The input X if `final` (a Reshape node) ends paddle2onnx's form of
    `upsample_nearest_2x(X)`, else None."""
    if final.op_type != 'Reshape':
        return None
    first = g.source(final.input[0])
    if first is None or first.op_type != 'Reshape':
        return None
    expand = g.source(first.input[0])
    if expand is None or expand.op_type != 'Expand':
        return None
    unsqueeze = g.source(expand.input[0])
    if (unsqueeze is None or unsqueeze.op_type != 'Unsqueeze'
            or not _equal(g.constant(unsqueeze.input[1]), [3, 5])):
        return None
    # expand to [.., .., .., 2, .., 2]: a constant, or max(shape(U), constant) as paddle2onnx
    # writes paddle.expand's -1 entries
    shape = g.constant(expand.input[1])
    if shape is None:
        node = g.source(expand.input[1])
        if node is None or node.op_type != 'Max' or len(node.input) != 2:
            return None
        inputs = [g.source(i) for i in node.input]
        shape_of_u = [i for i, n in enumerate(inputs) if n is not None and n.op_type == 'Shape'
                      and n.input[0] == unsqueeze.output[0]]
        if len(shape_of_u) != 1:
            return None
        shape = g.constant(node.input[1 - shape_of_u[0]])
    if shape is None or len(shape) != 6 or [shape[3], shape[5]] != [2, 2] \
            or any(shape[i] not in (-1, 1) for i in (0, 1, 2, 4)):
        return None
    # flatten(4, 5): reshape to shape(E)[0:4] + [-1]
    target = g.source(first.input[1])
    if (target is None or target.op_type != 'Concat' or len(target.input) != 2
            or not g.shape_slice(target.input[0], expand.output[0], 0, 4)
            or not _equal(g.constant(target.input[1]), [-1])):
        return None
    # flatten(2, 3): reshape to shape(F1)[0:2] + [-1] + shape(F1)[4:5]
    target = g.source(final.input[1])
    if (target is None or target.op_type != 'Concat' or len(target.input) != 3
            or not g.shape_slice(target.input[0], first.output[0], 0, 2)
            or not _equal(g.constant(target.input[1]), [-1])
            or not g.shape_slice(target.input[2], first.output[0], 4, 5)):
        return None
    return unsqueeze.input[0]


def _remove_dead_nodes(graph):
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [i for i, node in enumerate(graph.node)
                if not any(out in used for out in node.output)]
        if not dead:
            return
        for i in reversed(dead):
            del graph.node[i]


def use_resize_for_nearest_upsampling(model):
    """Replace every converted `upsample_nearest_2x` in `model` (an onnx ModelProto) with one
    Resize, in place. Returns how many were replaced."""
    from onnx import helper, numpy_helper
    graph = model.graph
    g = _Graph(graph)
    found = [(node, source) for node in graph.node
             for source in [_upsampled_input(g, node)] if source is not None]
    for node, source in found:
        resize = helper.make_node(
            'Resize', [source, '', SCALES], list(node.output), name=f'{node.name}_resize',
            mode='nearest', coordinate_transformation_mode='asymmetric', nearest_mode='floor')
        index = list(graph.node).index(node)
        del graph.node[index]
        graph.node.insert(index, resize)
    replaced = len(found)
    if replaced:
        graph.initializer.append(numpy_helper.from_array(
            np.array([1, 1, 2, 2], np.float32), SCALES))
        _remove_dead_nodes(graph)
    return replaced
