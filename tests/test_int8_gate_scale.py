"""GC gates applied by the int8 convolution's requantization in ONNX Runtime
(deploy/python/int8_gate_scale.py), against integer arithmetic done in numpy."""
import numpy as np
import pytest

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deploy.python import int8_gate_scale  # noqa: E402
from deploy.python.backends.onnx_model import runtime_model  # noqa: E402
from deploy.python.predictor import PredictorOptions  # noqa: E402
from tests.onnx_graphs import run, small_model  # noqa: E402

C_IN, C, H, W = 16, 24, 12, 10
X_SCALE, X_ZERO = 0.05, 3
GATE_SCALE = 1 / 255


def quantities(seed=0):
    """Quantized input, weights and bias, a gate, and output scales and zero points that a
    min-max calibration on this input would give (the conv's map, then the gated map)."""
    rng = np.random.RandomState(seed)
    q = {'x_q': rng.randint(0, 256, (1, C_IN, H, W)).astype(np.uint8),
         # levels within +-64: exact sums on every CPU (8-bit ones saturate without VNNI,
         # deploy/python/int8_weight_range.py)
         'w_q': rng.randint(-64, 65, (C, C_IN, 3, 3)).astype(np.int8),
         'w_scale': (rng.rand(C) * 0.004 + 0.001).astype(np.float32),
         'bias_q': rng.randint(-3000, 3000, C).astype(np.int32),
         'gate': rng.rand(1, C, 1, 1).astype(np.float32)}
    conv = integer_sums(q) * X_SCALE * q['w_scale'].astype(np.float64)[:, None, None]
    for key, values in (('y1', conv), ('y', conv * q['gate'].reshape(C, 1, 1))):
        low, high = min(values.min(), 0.0), max(values.max(), 0.0)
        q[key + '_scale'] = np.float32((high - low) / 255)
        q[key + '_zero'] = np.uint8(np.rint(-low / q[key + '_scale']))
    return q


def integer_sums(q):
    """sum (x_q - x_zero) * w_q + b_q of the 3x3, pad 1 convolution, in int64."""
    x = np.pad(q['x_q'][0].astype(np.int64) - X_ZERO, ((0, 0), (1, 1), (1, 1)))
    w = q['w_q'].astype(np.int64)
    sums = np.zeros((C, H, W), np.int64)
    for i in range(3):
        for j in range(3):
            sums += np.einsum('oc,chw->ohw', w[:, :, i, j], x[:, i:i + H, j:j + W])
    return sums + q['bias_q'][:, None, None]


def gated_conv_graph(q, gate_shape=(1, C, 1, 1)):
    """Q(DQ(Q(conv3x3(DQ(x_q), DQ(W_q), DQ(b_q)))) * DQ(Q(gate))) -> DQ -> out, as the static
    quantizer writes a GC mul block's last conv in QDQ form."""
    def const(name, value):
        return numpy_helper.from_array(np.asarray(value), name)
    inits = [const('x_scale', np.float32(X_SCALE)), const('x_zero', np.uint8(X_ZERO)),
             const('w_q', q['w_q']), const('w_scale', q['w_scale']),
             const('w_zero', np.zeros(C, np.int8)), const('b_q', q['bias_q']),
             const('b_scale', (X_SCALE * q['w_scale']).astype(np.float32)),
             const('b_zero', np.zeros(C, np.int32)),
             const('y1_scale', q['y1_scale']), const('y1_zero', q['y1_zero']),
             const('g_scale', np.float32(GATE_SCALE)), const('g_zero', np.uint8(0)),
             const('y_scale', q['y_scale']), const('y_zero', q['y_zero'])]
    dq = 'DequantizeLinear'
    nodes = [
        helper.make_node(dq, ['x_q', 'x_scale', 'x_zero'], ['x'], name='dq_x'),
        helper.make_node(dq, ['w_q', 'w_scale', 'w_zero'], ['w'], name='dq_w', axis=0),
        helper.make_node(dq, ['b_q', 'b_scale', 'b_zero'], ['b'], name='dq_b', axis=0),
        helper.make_node('Conv', ['x', 'w', 'b'], ['conv'], name='conv', pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node('QuantizeLinear', ['conv', 'y1_scale', 'y1_zero'], ['conv_q'],
                         name='q_conv'),
        helper.make_node(dq, ['conv_q', 'y1_scale', 'y1_zero'], ['conv_dq'], name='dq_conv'),
        helper.make_node('QuantizeLinear', ['gate', 'g_scale', 'g_zero'], ['gate_q'],
                         name='q_gate'),
        helper.make_node(dq, ['gate_q', 'g_scale', 'g_zero'], ['gate_dq'], name='dq_gate'),
        helper.make_node('Mul', ['conv_dq', 'gate_dq'], ['gated'], name='gate_mul'),
        helper.make_node('QuantizeLinear', ['gated', 'y_scale', 'y_zero'], ['gated_q'],
                         name='q_gated'),
        helper.make_node(dq, ['gated_q', 'y_scale', 'y_zero'], ['out'], name='dq_out')]
    inputs = [helper.make_tensor_value_info('x_q', TensorProto.UINT8, [1, C_IN, H, W]),
              helper.make_tensor_value_info('gate', TensorProto.FLOAT, list(gate_shape))]
    outputs = [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, C, H, W])]
    return small_model(nodes, 'gated_conv', inputs, outputs, inits)


def ideal_levels(q):
    """The gated map's uint8 levels from the exact integer sums, rounded once:
    round(sums * x_scale * w_scale * gate / y_scale) + y_zero."""
    factor = (X_SCALE * q['w_scale'].astype(np.float64) * q['gate'].reshape(C)
              / np.float64(q['y_scale']))
    return np.clip(np.rint(integer_sums(q) * factor[:, None, None]) + q['y_zero'], 0, 255)


def levels(out, q):
    return np.rint(out[0] / q['y_scale']) + q['y_zero']


def test_gate_joins_the_requantization_and_rounds_once():
    q = quantities()
    model = gated_conv_graph(q)
    feed = {'x_q': q['x_q'], 'gate': q['gate']}
    before = levels(run(model, feed)[0], q)
    assert int8_gate_scale.rewrite(model) == 1
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count('QLinearConv') == 1 and 'Conv' not in ops
    # no multiply of a map is left: only the [C] weight scale times the gate
    assert [n.name for n in model.graph.node if n.op_type == 'Mul'] == [
        'gate_in_requantization/0/gated_w_scale']
    after = levels(run(model, feed)[0], q)
    ideal = ideal_levels(q)
    assert np.abs(after - ideal).max() <= 1
    assert (after == ideal).mean() > 0.999
    # the graph before rounds the conv's output, then the gate (itself 8-bit) and the product
    assert np.abs(before - ideal).max() >= 1 and (before == ideal).mean() < 0.95
    assert np.abs(before - after).max() <= 3


def test_other_multiplies_are_left_alone():
    q = quantities()
    map_gate = gated_conv_graph(q, gate_shape=(1, C, H, W))  # a map, not one factor per channel
    assert int8_gate_scale.rewrite(map_gate) == 0
    shared = gated_conv_graph(q)  # the conv's quantized output read elsewhere too
    shared.graph.output.append(helper.make_tensor_value_info('conv_dq', TensorProto.FLOAT, None))
    assert int8_gate_scale.rewrite(shared) == 0


def test_only_onnx_runtime_int8_loads_the_rewritten_model(tmp_path, monkeypatch):
    from deploy.python import int8_weight_range
    monkeypatch.setattr(int8_weight_range, 'saturates', lambda backend: False)  # gates alone
    path = str(tmp_path / 'model_int8.onnx')
    onnx.save(gated_conv_graph(quantities()), path)
    source = runtime_model(path, PredictorOptions(backend='onnxruntime', run_mode='int8'),
                           'ONNX Runtime')
    assert isinstance(source, bytes)
    assert 'QLinearConv' in [n.op_type for n in onnx.load_from_string(source).graph.node]
    # OpenVINO runs int8 convolutions only with constant scales: it keeps the QDQ graph
    assert runtime_model(path, PredictorOptions(backend='openvino', run_mode='int8'),
                         'OpenVINO') == path
