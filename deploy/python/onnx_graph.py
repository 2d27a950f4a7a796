"""Reading, extending and pruning ONNX graphs for the load-time rewrites (winograd,
context_add_rows, context_channels_last, gated_conv_blocked, int8_gate_scale,
int8_weight_range)."""


class GraphIndex:
    """Producers, consumers and constant values of an ONNX graph."""

    def __init__(self, graph):
        from onnx import numpy_helper
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        # graph outputs and names If / Loop bodies read: such a tensor keeps its producer
        self.read_outside = {output.name for output in graph.output} | subgraph_reads(graph)
        self.values = {init.name: init for init in graph.initializer}
        self._array = numpy_helper.to_array

    def source(self, name):
        """The first producer of `name` that is not an Identity (None for a graph input or an
        initializer)."""
        node = self.producer.get(name)
        while node is not None and node.op_type == 'Identity':
            node = self.producer.get(node.input[0])
        return node

    def constant(self, name):
        """The value of `name` if it is an initializer or a Constant node's (through Identity)."""
        node = self.producer.get(name)
        while node is not None and node.op_type == 'Identity':
            name, node = node.input[0], self.producer.get(node.input[0])
        if node is None:
            return self._array(self.values[name]) if name in self.values else None
        attributes = {a.name: a for a in node.attribute}
        if node.op_type == 'Constant' and 'value' in attributes:
            return self._array(attributes['value'].t)
        return None

    def only_consumer(self, name):
        consumers = self.consumers.get(name, [])
        return consumers[0] if len(consumers) == 1 and name not in self.read_outside else None


class InitializerWriter:
    """Initializers for a rewrite's new nodes, each name added once (constants shared by every
    rewritten site are written a single time)."""

    def __init__(self, graph, prefix):
        self.graph, self.prefix = graph, prefix
        self.names = {init.name for init in graph.initializer}

    def constant(self, name, value):
        import numpy as np
        from onnx import numpy_helper
        if name not in self.names:
            self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
            self.names.add(name)
        return name

    def ints(self, name, values):
        """An int64 constant named `prefix/name`."""
        import numpy as np
        return self.constant(f'{self.prefix}/{name}', np.array(values, np.int64))


def splice(graph, replacing):
    """Rebuild `graph.node` in order, each node whose id is a key of `replacing` giving way to
    that list of nodes (which may hold the node itself, to insert before or after it)."""
    nodes = []
    for node in graph.node:
        nodes.extend(replacing.get(id(node), [node]))
    del graph.node[:]
    graph.node.extend(nodes)


def image_batch_dim(graph):
    """The batch dimension of the graph's `image` input (a number or a symbol), for shape
    annotations that must agree with the shapes a runtime infers from it."""
    image = [i for i in graph.input if i.name == 'image']
    if image and image[0].type.tensor_type.shape.dim:
        dim = image[0].type.tensor_type.shape.dim[0]
        return dim.dim_value if dim.HasField('dim_value') else (dim.dim_param or 'batch')
    return 'batch'


def dequantized_initializer(name, g):
    """(the DequantizeLinear node, its levels, scale, zero point or None) if `name` is a
    DequantizeLinear of an initializer with a constant scale (and zero point, where it has one);
    else None. `g` is the graph's GraphIndex."""
    node = g.producer.get(name)
    if node is None or node.op_type != 'DequantizeLinear' or node.input[0] not in g.values:
        return None
    scale = g.constant(node.input[1])
    has_zero = len(node.input) > 2 and bool(node.input[2])
    zero = g.constant(node.input[2]) if has_zero else None
    if scale is None or (has_zero and zero is None):
        return None
    return node, g.constant(node.input[0]), scale, zero


def subgraph_reads(graph):
    """The tensor names read by the nodes of `graph`'s subgraphs (If / Loop / Scan bodies)."""
    from onnx import AttributeProto
    names = set()
    for node in graph.node:
        for attribute in node.attribute:
            bodies = ([attribute.g] if attribute.type == AttributeProto.GRAPH
                      else attribute.graphs if attribute.type == AttributeProto.GRAPHS else [])
            for body in bodies:
                names |= {name for inner in body.node for name in inner.input}
                names |= subgraph_reads(body)
    return names


def attributes(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def remove_unused(graph):
    """Drop nodes and initializers nothing reads any more (the original weights)."""
    read_by_bodies = subgraph_reads(graph)
    while True:
        used = {name for node in graph.node for name in node.input}
        used |= {output.name for output in graph.output} | read_by_bodies
        dead = [i for i, node in enumerate(graph.node) if not any(o in used for o in node.output)]
        if not dead:
            break
        for i in reversed(dead):
            del graph.node[i]
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
