"""ONNX Runtime int8: the box head's fully connected layers quantized per run (dynamic int8).

`model_int8.onnx` quantizes convolutions only (deploy/python/quantize.py); the box head's two
fully connected layers stay fp32 Gemms there, and in ONNX Runtime int8 they are then the largest
fp32 node left: fc6 multiplies 1000 RoIs by a [12544, 1024] weight (12.8 GMACs), 150-195 ms per
800x1344 image on two AVX2 cores, next to 1.4-1.5 s for all the int8 convolutions.
At load time each such Gemm (constant weight, followed by a Relu: a feature layer; the class
score and box delta layers, read by Softmax and Slice, keep fp32 like the heads' prediction
convolutions) becomes ONNX Runtime's `com.microsoft.DynamicQuantizeMatMul`: its input is
quantized to uint8 from the input's own min / max in every run (nothing to calibrate, so the
file is not changed), the weight symmetric int8 per output column, and the product is taken by
the same int8 GEMM as the convolutions, bias added in fp32. Interleaved node by node (control
model, 6 rounds): fc6 + fc7 173 -> 96 ms.

Where this CPU's int8 dot product saturates (`int8_weight_range.saturates`: AVX2 without VNNI
adds pairs of uint8 x int8 products in int16) the weights use at most NARROW_LEVEL levels, so
that the sums are exact (checked in tests/test_int8_dynamic_fc.py; with 8-bit weights a
worst-case input came out 49 % low on such a CPU).

OpenVINO is not given this form: its int8 fully connected layer on the same CPU was slower than
fp32 (+54 ms for the two layers with their quantize nodes).
"""
import numpy as np

from .int8_weight_range import NARROW_LEVEL, saturates
from .onnx_graph import GraphIndex, InitializerWriter, attributes, remove_unused

FULL_LEVEL = 127
_PREFIX = 'int8_dynamic_fc'
MS_DOMAIN = 'com.microsoft'


def quantized_columns(weight, levels):
    """(int8 [K, N] levels, float32 [N] scales): `weight` [K, N] symmetric per column, at most
    `levels` levels each side (an all-zero column gets scale 1)."""
    weight = weight.astype(np.float64)
    scale = np.abs(weight).max(axis=0) / levels
    scale[scale == 0] = 1.0
    quantized = np.clip(np.round(weight / scale), -levels, levels).astype(np.int8)
    return quantized, scale.astype(np.float32)


def _feature_gemm(node, g):
    """The [K, N] fp32 weight of `node` if it is a Gemm `x W + b` (W constant, no scaling, either
    orientation of W) whose output only a Relu reads; else None."""
    if node.op_type != 'Gemm' or len(node.input) < 2:
        return None
    attrs = attributes(node)
    weight = g.constant(node.input[1])
    if (weight is None or weight.dtype != np.float32 or weight.ndim != 2
            or attrs.get('transA', 0) != 0 or attrs.get('alpha', 1.0) != 1.0
            or attrs.get('beta', 1.0) != 1.0):
        return None
    if len(node.input) > 2 and node.input[2]:
        bias = g.constant(node.input[2])
        if bias is None or bias.ndim != 1:
            return None
    consumer = g.only_consumer(node.output[0])
    if consumer is None or consumer.op_type != 'Relu':
        return None
    return weight.T if attrs.get('transB', 0) else weight


def rewrite(model, levels=None):
    """Replace, in place, every feature-layer Gemm of `model` (see module docstring) by a
    DynamicQuantizeMatMul with int8 weights of at most `levels` levels (default: NARROW_LEVEL
    where ONNX Runtime's int8 products saturate on this CPU, else FULL_LEVEL). Returns how many
    were replaced."""
    from onnx import helper
    if levels is None:
        levels = NARROW_LEVEL if saturates('onnxruntime') else FULL_LEVEL
    graph = model.graph
    g = GraphIndex(graph)
    writer = InitializerWriter(graph, _PREFIX)
    nodes, count = [], 0
    for node in graph.node:
        weight = _feature_gemm(node, g)
        if weight is None:
            nodes.append(node)
            continue
        quantized, scale = quantized_columns(weight, levels)
        tag = f'{_PREFIX}/{count}'
        inputs = [node.input[0], writer.constant(f'{tag}/weight', quantized),
                  writer.constant(f'{tag}/scale', scale),
                  writer.constant(f'{tag}/zero_point', np.zeros(scale.shape, np.int8))]
        if len(node.input) > 2 and node.input[2]:
            inputs.append(node.input[2])
        nodes.append(helper.make_node('DynamicQuantizeMatMul', inputs, list(node.output),
                                      name=f'{node.name}/{_PREFIX}', domain=MS_DOMAIN))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        if not any(o.domain == MS_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
        remove_unused(graph)  # the fp32 weights
    return count
