"""The lean GC context read in channels-last order, where the runtime keeps maps channels-last.

The lean GC block (ppdet_gcnet.deploy.lean_gc) pools its context from the 3x3 conv's output y:
`flat = Reshape(y, [0, 0, -1])` ([N, Cin, HW], channels first), then two matmuls on it, the
attention logits `w . flat` and the pooled context `flat . softmax(logits)^T`. ONNX Runtime's
int8 convolutions and OpenVINO's (int8, and fp32 on this AVX2 CPU) keep y channels-last, so
reading it channels-first costs a full reorder of y per block before the matmuls (OpenVINO
`Reorder`: +11 to +23 ms in int8, +15 to +17 ms in fp32, of about 2 s at 800x1344; ONNX Runtime
int8 a `Transpose`, +3 ms). Read channels-last instead,

    cl = Reshape(Transpose(y, [0, 2, 3, 1]), [-1, Cin])      [HW, Cin]
    logits = Gemm(w, cl, transB=1),  attention = softmax over HW,  pooled = attention . cl

and the Transpose is the layout the runtime already holds: ONNX Runtime cancels it against the
transpose its NHWC transformer puts after the int8 conv, OpenVINO takes y as it is. The logits
are a Gemm with a transposed operand: as a batched MatMul on a Transpose of cl, ONNX Runtime int8
ran that Transpose (+3 ms); as `cl . w^T`, OpenVINO made it a slow one-column FullyConnected
(+6 ms). Same sums in another order (float rounding). One image per run, as the ONNX exports
take (the rows of every image would share one softmax). Not for ONNX Runtime fp32: it keeps y in
its blocked NCHWc layout and would reorder it to plain and then transpose (+4 ms measured).

Matched: the export's form, a Reshape to [0, 0, -1] read by `MatMul(w [1, Cin], flat)`, an
optional constant bias add, a Softmax over the last axis and `MatMul(flat, Transpose(softmax))`.
"""
import numpy as np

from .onnx_graph import GraphIndex, InitializerWriter, attributes, remove_unused, splice

_PREFIX = 'gc_context_channels_last'


def _biased_logits(name, g):
    """(the logits MatMul, the bias value or None) behind the softmax input `name`."""
    node = g.source(name)
    if node is not None and node.op_type == 'Add':
        for side in (0, 1):
            bias = g.constant(node.input[side])
            if bias is not None and bias.size == 1:
                return g.source(node.input[1 - side]), bias
        return None, None
    return node, None


def _context_reads(graph, g):
    """[(y, Cin, mask weights [1, Cin], bias value or None, the pooled MatMul)] for each lean GC
    context read of `graph`."""
    found = []
    for softmax in graph.node:
        if softmax.op_type != 'Softmax' or attributes(softmax).get('axis', -1) not in (2, -1):
            continue
        logits, bias = _biased_logits(softmax.input[0], g)
        if logits is None or logits.op_type != 'MatMul':
            continue
        mask, flat = g.constant(logits.input[0]), g.producer.get(logits.input[1])
        if mask is None or mask.ndim != 2 or mask.shape[0] != 1 or flat is None \
                or flat.op_type != 'Reshape' or g.constant(flat.input[1]) is None \
                or list(g.constant(flat.input[1])) != [0, 0, -1]:
            continue
        transpose = g.only_consumer(softmax.output[0])
        if transpose is None or transpose.op_type != 'Transpose' \
                or list(attributes(transpose).get('perm', [])) != [0, 2, 1]:
            continue
        pooled = g.only_consumer(transpose.output[0])
        if pooled is None or pooled.op_type != 'MatMul' \
                or list(pooled.input) != [flat.output[0], transpose.output[0]]:
            continue
        found.append((flat.input[0], mask.shape[1], mask, bias, pooled))
    return found


def rewrite(model):
    """Read every lean GC context of `model` (an onnx ModelProto, fp32 or int8, one image per
    run) channels-last, in place. Returns how many were rewritten."""
    from onnx import helper
    graph = model.graph
    g = GraphIndex(graph)
    reads = _context_reads(graph, g)
    if not reads:
        return 0
    w = InitializerWriter(graph, _PREFIX)
    replacing = {}  # pooled MatMul -> the nodes computing its output channels-last
    for index, (y, channels, mask, bias, pooled) in enumerate(reads):
        tag = f'{_PREFIX}/{index}'
        # as Gemm's C: one value, broadcast over the [1, HW] logits
        bias = [] if bias is None else [w.constant(f'{tag}/bias', np.float32(bias).reshape(1))]
        replacing[id(pooled)] = [
            helper.make_node('Transpose', [y], [f'{tag}/nhwc'], perm=[0, 2, 3, 1]),
            helper.make_node('Reshape', [f'{tag}/nhwc', w.ints(f'rows_{channels}',
                                                               [-1, channels])],
                             [f'{tag}/cl']),                                     # [HW, Cin]
            helper.make_node('Gemm', [w.constant(f'{tag}/mask', mask.astype(np.float32)),
                                      f'{tag}/cl'] + bias, [f'{tag}/logits'],
                             transB=1),                                          # [1, HW]
            helper.make_node('Softmax', [f'{tag}/logits'], [f'{tag}/attention'], axis=1),
            helper.make_node('MatMul', [f'{tag}/attention', f'{tag}/cl'],
                             [f'{tag}/pooled']),                                 # [1, Cin]
            helper.make_node('Reshape', [f'{tag}/pooled', w.ints(f'column_{channels}',
                                                                 [1, channels, 1])],
                             [pooled.output[0]]),
        ]
    splice(graph, replacing)
    remove_unused(graph)  # the channels-first Reshape, logits, softmax and transpose
    return len(reads)
