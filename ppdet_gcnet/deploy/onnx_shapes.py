"""Shape annotations on `model.onnx` that let ONNX Runtime fuse GC add's residual into the conv.

ONNX Runtime's CPU provider runs convolutions in a blocked channel layout (its NCHWc transformer,
onnxruntime/core/optimizer/nchwc_transformer.cc) and fuses `relu(conv(y) + s)` into one conv
(`s` accumulated into the output buffer, relu applied in place) only when it can show that the
two inputs of the add have the same shape: by following the conv chain from one input (strides,
padding), or from the shapes in the model. In the lean GC add form (`ppdet_gcnet.deploy.lean_gc`)
the residual is `relu(conv(y) + (short + t))`; `short + t` broadcasts the one-per-image vector
`t` over the map, so the chain is broken there, and paddle2onnx writes no shapes: ORT then runs
the residual add and the relu as two more full-map passes (BENCHMARKS.md: +77 ms `Add`, +21 ms
`Relu` per run at 800x1344). Annotating the conv's output and `short + t` with one symbolic
shape (batch, channels, and a height and width named per block) is all it needs: the graph
and its function are unchanged, and what is left of GC add is the broadcast pass `short + t`
(the conv's bias must be a constant for the blocked conv, so `t` cannot go there).

Other runtimes read the annotation as the shape it is (OpenVINO infers its own shapes).
"""

RESIDUAL_DIM = 'gc_residual{index}_{axis}'


def _constant_shapes(graph):
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Constant' and node.attribute and node.attribute[0].name == 'value':
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    return shapes


def _through_identities(name, producers):
    """`name` and the names it copies through Identity nodes, and the first other producer."""
    names = [name]
    while name in producers and producers[name].op_type == 'Identity':
        name = producers[name].input[0]
        names.append(name)
    return names, producers.get(name)


def lean_gc_residuals(graph):
    """[(conv-side names, other-side names, channels)] for each residual sum
    `relu(bn(conv(.)) + (a + b))` in `graph`: a Relu of an Add whose inputs are, through Identity
    copies, a BatchNormalization and another Add. In a ResNet these are the residual adds of GC
    add blocks (the two inputs of a residual add have one shape by construction): in the lean
    form the block's last conv + norm and `short + t`; in the original form (basic blocks) also
    each stage's first block, whose shortcut conv + norm meets `x + t`."""
    producers = {out: node for node in graph.node for out in node.output}
    constants = _constant_shapes(graph)
    found = []
    for relu in graph.node:
        if relu.op_type != 'Relu':
            continue
        _, add = _through_identities(relu.input[0], producers)
        if add is None or add.op_type != 'Add' or len(add.input) != 2:
            continue
        sides = [_through_identities(name, producers) for name in add.input]
        kinds = [node.op_type if node is not None else None for _, node in sides]
        if sorted(kinds, key=str) != ['Add', 'BatchNormalization']:
            continue
        conv_side = sides[kinds.index('BatchNormalization')]
        shortcut_side = sides[kinds.index('Add')]
        scale = constants.get(conv_side[1].input[1])
        if not scale or len(scale) != 1:
            continue
        found.append((conv_side[0], shortcut_side[0], scale[0]))
    return found


def annotate_lean_gc_residuals(model):
    """Give both inputs of every lean GC add residual (`lean_gc_residuals`) one symbolic 4-D
    shape in `model.graph.value_info`, in place. Returns the number of residuals annotated."""
    from onnx import TensorProto, helper
    graph = model.graph
    image = [i for i in graph.input if i.name == 'image']
    batch = 'batch'
    if image and image[0].type.tensor_type.shape.dim:
        dim = image[0].type.tensor_type.shape.dim[0]
        batch = dim.dim_value if dim.HasField('dim_value') else (dim.dim_param or batch)
    residuals = lean_gc_residuals(graph)
    annotated = {}
    for index, (conv_names, shortcut_names, channels) in enumerate(residuals):
        shape = [batch, channels, RESIDUAL_DIM.format(index=index, axis='height'),
                 RESIDUAL_DIM.format(index=index, axis='width')]
        for name in conv_names + shortcut_names:
            annotated[name] = helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    kept = [info for info in graph.value_info if info.name not in annotated]
    del graph.value_info[:]
    graph.value_info.extend(kept + list(annotated.values()))
    return len(residuals)
