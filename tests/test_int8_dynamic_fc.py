"""The box head's fully connected layers as ONNX Runtime dynamic int8 matmuls
(deploy/python/int8_dynamic_fc.py): checked against integer arithmetic on the levels ONNX
Runtime's dynamic quantization defines, on whatever CPU the tests run on."""
import numpy as np
import pytest

from deploy.python import int8_dynamic_fc, int8_weight_range

pytest.importorskip('onnxruntime')

ROIS, IN_FEATURES, OUT_FEATURES, CLASSES = 40, 392, 64, 5


def box_head(fc1, fc2, cls, trans_b=False, alpha=1.0):
    """fc1 -> relu -> fc2 -> relu -> class scores -> softmax, as the exported box head, with the
    weights given [in, out] (stored transposed when `trans_b`)."""
    from onnx import TensorProto, helper, numpy_helper
    constants, nodes = {}, []
    for i, (weight, after) in enumerate(((fc1, 'Relu'), (fc2, 'Relu'), (cls, 'Softmax'))):
        constants[f'w{i}'] = np.ascontiguousarray(weight.T if trans_b else weight)
        constants[f'b{i}'] = np.linspace(-0.5, 0.5, weight.shape[1]).astype(np.float32)
        nodes += [helper.make_node('Gemm', [f'x{i}', f'w{i}', f'b{i}'], [f'g{i}'], name=f'fc{i}',
                                   transB=int(trans_b), alpha=alpha if i == 0 else 1.0),
                  helper.make_node(after, [f'g{i}'], [f'x{i + 1}' if i < 2 else 'y'])]
    graph = helper.make_graph(
        nodes, 'box_head', [helper.make_tensor_value_info('x0', TensorProto.FLOAT,
                                                          [None, IN_FEATURES])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, None),
         helper.make_tensor_value_info('x1', TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope='module')
def weights():
    rng = np.random.default_rng(0)
    return (rng.normal(0, 0.05, (IN_FEATURES, OUT_FEATURES)).astype(np.float32),
            rng.normal(0, 0.1, (OUT_FEATURES, OUT_FEATURES)).astype(np.float32),
            rng.normal(0, 0.1, (OUT_FEATURES, CLASSES)).astype(np.float32))


def run(model, x):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=['CPUExecutionProvider'])
    return session.run(None, {'x0': x})


def dynamic_reference(x, levels, scale, bias):
    """relu(x W + b) with x quantized as ONNX Runtime's DynamicQuantizeLinear does (uint8, range
    widened to hold 0, zero point rounded) and W = levels * scale, summed in int64."""
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    x_scale = np.float32((high - low) / 255)
    zero = np.clip(np.round(-low / x_scale), 0, 255)
    x_levels = np.clip(np.round(x / x_scale) + zero, 0, 255).astype(np.int64)
    sums = (x_levels - int(zero)) @ levels.astype(np.int64)
    return np.maximum(sums * (np.float64(x_scale) * scale.astype(np.float64)) + bias, 0)


def initializers(model):
    from onnx import numpy_helper
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


@pytest.mark.parametrize('levels', [int8_dynamic_fc.FULL_LEVEL, int8_weight_range.NARROW_LEVEL])
def test_feature_layers_become_dynamic_int8_and_match_integer_sums(weights, levels):
    fc1, fc2, cls = weights
    model = box_head(fc1, fc2, cls)
    assert int8_dynamic_fc.rewrite(model, levels) == 2
    ops = [(node.name, node.op_type) for node in model.graph.node]
    assert ('fc0/int8_dynamic_fc', 'DynamicQuantizeMatMul') in ops
    assert ('fc1/int8_dynamic_fc', 'DynamicQuantizeMatMul') in ops
    assert ('fc2', 'Gemm') in ops  # the class scores (read by Softmax) stay fp32
    values = initializers(model)
    assert 'w0' not in values and 'w1' not in values and 'w2' in values
    quantized, scale = values['int8_dynamic_fc/0/weight'], values['int8_dynamic_fc/0/scale']
    assert quantized.dtype == np.int8 and np.abs(quantized.astype(np.int16)).max() == levels
    np.testing.assert_allclose(quantized * scale, fc1, atol=float(scale.max()) / 2 * 1.0001)

    x = np.maximum(np.random.default_rng(1).normal(0, 1, (ROIS, IN_FEATURES)), 0)
    x = x.astype(np.float32)
    _, hidden = run(model, x)
    expected = dynamic_reference(x, quantized, scale, np.linspace(-0.5, 0.5, OUT_FEATURES))
    np.testing.assert_allclose(hidden, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    fp32 = np.maximum(x @ fc1 + np.linspace(-0.5, 0.5, OUT_FEATURES), 0)
    assert np.abs(hidden - fp32).max() < 0.02 * np.abs(fp32).max()


def test_narrowed_weights_are_exact_where_full_ones_saturate(weights):
    """The worst case for int16 pair sums: every input at the top level, every weight at +max.
    Full 8-bit levels come out exact only where the CPU's int8 product does not saturate (the
    probe's verdict); NARROW_LEVEL levels always do."""
    ones_in = np.ones((IN_FEATURES, OUT_FEATURES), np.float32)
    x = np.ones((ROIS, IN_FEATURES), np.float32)
    expected = np.maximum(x @ ones_in + np.linspace(-0.5, 0.5, OUT_FEATURES), 0)
    for levels in (int8_dynamic_fc.FULL_LEVEL, int8_weight_range.NARROW_LEVEL):
        model = box_head(ones_in, *weights[1:])
        int8_dynamic_fc.rewrite(model, levels)
        _, hidden = run(model, x)
        exact = np.allclose(hidden, expected, rtol=1e-5)
        if levels == int8_weight_range.NARROW_LEVEL:
            assert exact, np.abs(hidden - expected).max()
        else:
            assert exact != int8_weight_range.saturates('onnxruntime')


def test_default_levels_follow_the_probe(weights, monkeypatch):
    for saturating, levels in ((True, int8_weight_range.NARROW_LEVEL),
                               (False, int8_dynamic_fc.FULL_LEVEL)):
        monkeypatch.setattr(int8_dynamic_fc, 'saturates', lambda backend: saturating)
        model = box_head(*weights)
        assert int8_dynamic_fc.rewrite(model) == 2
        top = np.abs(initializers(model)['int8_dynamic_fc/0/weight'].astype(np.int16)).max()
        assert top == levels


def test_transposed_weights_and_other_gemms(weights):
    fc1, fc2, cls = weights
    x = np.maximum(np.random.default_rng(2).normal(0, 1, (ROIS, IN_FEATURES)), 0)
    x = x.astype(np.float32)
    plain, transposed = box_head(fc1, fc2, cls), box_head(fc1, fc2, cls, trans_b=True)
    assert int8_dynamic_fc.rewrite(plain, 127) == int8_dynamic_fc.rewrite(transposed, 127) == 2
    np.testing.assert_array_equal(run(plain, x)[1], run(transposed, x)[1])
    scaled = box_head(fc1, fc2, cls, alpha=0.5)
    assert int8_dynamic_fc.rewrite(scaled, 127) == 1  # a scaled Gemm is left alone
    assert [n.op_type for n in scaled.graph.node][0] == 'Gemm'


def test_onnx_runtime_int8_loads_it_and_openvino_and_fp32_do_not(weights, tmp_path):
    import onnx
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.predictor import PredictorOptions
    path = str(tmp_path / 'model_int8.onnx')
    onnx.save(box_head(*weights), path)

    def op_types(loaded):
        model = onnx.load(loaded) if loaded == path else onnx.load_from_string(loaded)
        return [node.op_type for node in model.graph.node]
    int8 = PredictorOptions(backend='onnxruntime', run_mode='int8').check()
    assert op_types(runtime_model(path, int8, 'ONNX Runtime')).count('DynamicQuantizeMatMul') == 2
    assert 'DynamicQuantizeMatMul' not in op_types(runtime_model(
        path, PredictorOptions(backend='onnxruntime', winograd=False).check(), 'ONNX Runtime'))
    pytest.importorskip('openvino')
    assert 'DynamicQuantizeMatMul' not in op_types(runtime_model(
        path, PredictorOptions(backend='openvino', run_mode='int8').check(), 'OpenVINO'))
