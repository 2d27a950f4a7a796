"""int8 weights narrowed to 7 bits where the CPU's int8 dot product saturates
(deploy/python/int8_weight_range.py), checked in ONNX Runtime and OpenVINO against integer
arithmetic on the quantized levels, on whatever CPU the tests run on."""
import numpy as np
import pytest

from deploy.python import int8_weight_range

pytest.importorskip('onnxruntime')
pytest.importorskip('openvino')

CHANNELS, OUT_CHANNELS, SIZE = 48, 16, 14
X_SCALE, Y_SCALE, Y_ZERO = 0.02, 0.5, 128


def qdq_conv(weight_levels, w_scale, bias_levels):
    """A QDQ 3x3 convolution as the int8 models hold them: uint8 activations, int8 weights per
    output channel, int32 bias at x_scale * w_scale, the output requantized."""
    from onnx import TensorProto, helper, numpy_helper
    out = weight_levels.shape[0]
    constants = {'w': weight_levels, 'w_scale': w_scale, 'w_zero': np.zeros(out, np.int8),
                 'b': bias_levels, 'b_scale': (w_scale * X_SCALE).astype(np.float32),
                 'b_zero': np.zeros(out, np.int32),
                 'x_scale': np.array(X_SCALE, np.float32), 'x_zero': np.array(0, np.uint8),
                 'y_scale': np.array(Y_SCALE, np.float32),
                 'y_zero': np.array(Y_ZERO, np.uint8)}
    nodes = [helper.make_node('QuantizeLinear', ['x', 'x_scale', 'x_zero'], ['x_q']),
             helper.make_node('DequantizeLinear', ['x_q', 'x_scale', 'x_zero'], ['x_dq']),
             helper.make_node('DequantizeLinear', ['w', 'w_scale', 'w_zero'], ['w_dq'], axis=0),
             helper.make_node('DequantizeLinear', ['b', 'b_scale', 'b_zero'], ['b_dq'], axis=0),
             helper.make_node('Conv', ['x_dq', 'w_dq', 'b_dq'], ['conv'], pads=[1, 1, 1, 1]),
             helper.make_node('QuantizeLinear', ['conv', 'y_scale', 'y_zero'], ['y_q']),
             helper.make_node('DequantizeLinear', ['y_q', 'y_scale', 'y_zero'], ['y'])]
    graph = helper.make_graph(
        nodes, 'conv', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                      [1, weight_levels.shape[1], SIZE, SIZE])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    return model


def integer_reference(x_levels, weight_levels, w_scale, bias_levels):
    """The output levels from int64 sums of the quantized values, requantized once."""
    padded = np.pad(x_levels.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    sums = np.zeros((1, weight_levels.shape[0], SIZE, SIZE), np.int64)
    for i in range(3):
        for j in range(3):
            sums += np.einsum('nchw,kc->nkhw', padded[:, :, i:i + SIZE, j:j + SIZE],
                              weight_levels[:, :, i, j].astype(np.int64))
    sums += bias_levels.astype(np.int64).reshape(1, -1, 1, 1)
    real = sums * (X_SCALE * w_scale.astype(np.float64)).reshape(1, -1, 1, 1)
    return np.clip(np.round(real / Y_SCALE) + Y_ZERO, 0, 255)


@pytest.fixture(scope='module')
def conv_case():
    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (OUT_CHANNELS, CHANNELS, 3, 3)).astype(np.int8)
    weight[:, 0, 0, 0] = 127  # symmetric per-channel quantization puts one level at +-127
    w_scale = rng.uniform(0.4, 0.6, OUT_CHANNELS).astype(np.float32) / 127
    bias = rng.integers(-20000, 20000, OUT_CHANNELS).astype(np.int32)
    x_levels = rng.integers(0, 256, (1, CHANNELS, SIZE, SIZE)).astype(np.uint8)
    return weight, w_scale, bias, x_levels


def run(backend, model_bytes, x):
    return int8_weight_range._run_probe(backend, model_bytes, x)


def levels(y):
    return np.round(y / Y_SCALE) + Y_ZERO


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_probe_tells_whether_8_bit_weights_come_out_exact(conv_case, backend):
    """On a random-level convolution: where the probe says the runtime saturates, 8-bit weights
    are far off the integer sums; where it says not, they are exact."""
    weight, w_scale, bias, x_levels = conv_case
    model = qdq_conv(weight, w_scale, bias)
    y = levels(run(backend, model.SerializeToString(), x_levels.astype(np.float32) * X_SCALE))
    off = np.abs(y - integer_reference(x_levels, weight, w_scale, bias))
    if int8_weight_range.saturates(backend):
        assert off.max() >= 3, off.max()
    else:
        assert off.max() <= 1 and (off == 0).mean() > 0.99


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_narrowed_weights_give_exact_sums_on_any_cpu(conv_case, backend):
    import onnx
    weight, w_scale, bias, x_levels = conv_case
    model = qdq_conv(weight, w_scale, bias)
    assert int8_weight_range.rewrite(model) == 1
    values = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    narrow = values['w_narrowed']
    assert narrow.dtype == np.int8 and np.abs(narrow.astype(np.int16)).max() == 64
    assert 'w' not in values  # the 8-bit levels are gone from the model
    # the same real weights, to half a 7-bit step; the bias's real value to one int32 level
    np.testing.assert_allclose(narrow * values['w_scale_narrowed'].reshape(-1, 1, 1, 1),
                               weight * w_scale.reshape(-1, 1, 1, 1),
                               atol=float(w_scale.max()) * 1.0001)
    np.testing.assert_array_equal(values['b_scale_narrowed'], values['w_scale_narrowed'] * X_SCALE)
    assert np.abs(values['b_narrowed'] * 2 - bias).max() <= 1
    y = levels(run(backend, model.SerializeToString(), x_levels.astype(np.float32) * X_SCALE))
    off = np.abs(y - integer_reference(x_levels, narrow, values['w_scale_narrowed'],
                                       values['b_narrowed']))
    assert off.max() <= 1 and (off == 0).mean() > 0.99


def test_narrow_weights_and_shared_weights_are_left_alone():
    from onnx import helper
    small = np.full((OUT_CHANNELS, CHANNELS, 3, 3), 64, np.int8)
    scale = np.full(OUT_CHANNELS, 0.01, np.float32)
    model = qdq_conv(small, scale, np.zeros(OUT_CHANNELS, np.int32))
    assert int8_weight_range.rewrite(model) == 0  # already within +-64
    wide = qdq_conv(np.full((OUT_CHANNELS, CHANNELS, 3, 3), 100, np.int8), scale,
                    np.zeros(OUT_CHANNELS, np.int32))
    wide.graph.node.append(helper.make_node('Identity', ['w_dq'], ['w_copy']))
    wide.graph.output.append(helper.make_tensor_value_info('w_copy', 1, None))
    assert int8_weight_range.rewrite(wide) == 0  # the dequantized weight is read elsewhere too


@pytest.mark.parametrize('saturating', [True, False])
@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_int8_loads_narrowed_weights_only_where_the_cpu_saturates(conv_case, tmp_path,
                                                                  monkeypatch, backend,
                                                                  saturating):
    import onnx
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.predictor import PredictorOptions
    weight, w_scale, bias, _ = conv_case
    path = tmp_path / 'model_int8.onnx'
    onnx.save(qdq_conv(weight, w_scale, bias), str(path))
    monkeypatch.setattr(int8_weight_range, 'saturates', lambda name: saturating)
    options = PredictorOptions(backend=backend, run_mode='int8').check()
    loaded = runtime_model(str(path), options, backend)
    if not saturating:
        assert loaded == str(path)
        return
    names = {i.name for i in onnx.load_from_string(loaded).graph.initializer}
    assert 'w_narrowed' in names and 'w' not in names
    # the fp32 model is never narrowed
    fp32 = PredictorOptions(backend=backend, winograd=False).check()
    assert runtime_model(str(path), fp32, backend) == str(path)


def test_a_probe_that_cannot_run_tells_nothing(monkeypatch):
    def broken(backend, model, x):
        raise RuntimeError('no int8 kernels here')
    monkeypatch.setattr(int8_weight_range, '_run_probe', broken)
    int8_weight_range.saturates.cache_clear()
    try:
        assert int8_weight_range.saturates('openvino') is False  # the model runs as written
    finally:
        int8_weight_range.saturates.cache_clear()
