"""Winograd F(4x4, 3x3) form of fp32 3x3 convolutions (deploy/python/winograd.py): its
transforms against a direct correlation in numpy, and rewritten graphs against the original
graphs in ONNX Runtime and OpenVINO."""
import copy

import numpy as np
import pytest

onnx = pytest.importorskip('onnx')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deploy.python import winograd  # noqa: E402
from deploy.python.backends.onnx_model import runtime_model  # noqa: E402
from deploy.python.predictor import PredictorOptions  # noqa: E402
from tests.onnx_graphs import small_model  # noqa: E402

RNG = np.random.default_rng(3)


def correlate(x, w):
    """Direct 'valid' 3x3 correlation of x [C, H, W] with w [Co, C, 3, 3], float64."""
    height, width = x.shape[1] - 2, x.shape[2] - 2
    out = np.zeros((w.shape[0], height, width))
    for i in range(3):
        for j in range(3):
            out += np.einsum('oc,chw->ohw', w[:, :, i, j], x[:, i:i + height, j:j + width])
    return out


def test_one_tile_equals_direct_correlation():
    tile = RNG.standard_normal((5, 6, 6))
    weight = RNG.standard_normal((7, 5, 3, 3))
    v = np.einsum('kij,cij->kc', winograd.input_transform_filters().reshape(36, 6, 6), tile)
    m = np.einsum('koc,kc->ko', winograd.transformed_weights(weight)[:, 0], v)
    y = (winograd.output_transform() @ m).T.reshape(7, 4, 4)
    expected = correlate(tile, weight)
    np.testing.assert_allclose(y, expected, atol=2e-5 * np.abs(expected).max())


def constant(name, value):
    return helper.make_node('Constant', [], [name], value=numpy_helper.from_array(
        np.asarray(value, np.float32), name + '_value'))


def conv_graph(channels=128):
    """x -> five convolutions the rewrite takes (with BatchNormalization, a bias add, a bias
    input, one whose output is also read by a second node, a wide one) and five it leaves (stride 2,
    64 channels, grouped, dilated, 1x1)."""
    c = channels
    w = lambda co, ci, k=3: RNG.standard_normal((co, ci, k, k)) * 0.05  # noqa: E731
    nodes = [constant('w_bn', w(c, c)), constant('gamma', RNG.uniform(0.5, 2, c)),
             constant('beta', RNG.standard_normal(c)), constant('mean', RNG.standard_normal(c)),
             constant('var', RNG.uniform(0.5, 2, c)),
             helper.make_node('Conv', ['x', 'w_bn'], ['c_bn'], pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3]),
             helper.make_node('BatchNormalization', ['c_bn', 'gamma', 'beta', 'mean', 'var'],
                              ['bn'], epsilon=1e-5),
             helper.make_node('Relu', ['bn'], ['y_bn']),
             constant('w_add', w(c, c)), constant('b_add', RNG.standard_normal((1, c, 1, 1))),
             helper.make_node('Conv', ['y_bn', 'w_add'], ['c_add'], pads=[1, 1, 1, 1]),
             helper.make_node('Add', ['c_add', 'b_add'], ['y_add']),
             constant('w_bias', w(c, c)), constant('b_bias', RNG.standard_normal(c)),
             helper.make_node('Conv', ['y_add', 'w_bias', 'b_bias'], ['y_bias'],
                              pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1),
             constant('w_shared', w(c, c)),
             helper.make_node('Conv', ['y_bias', 'w_shared'], ['y_shared'], pads=[1, 1, 1, 1]),
             helper.make_node('Relu', ['y_shared'], ['y_shared_relu']),
             constant('w_wide', w(2 * c, c)),
             helper.make_node('Conv', ['y_shared', 'w_wide'], ['y_wide'], pads=[1, 1, 1, 1]),
             constant('w_s2', w(c, 2 * c)),
             helper.make_node('Conv', ['y_wide', 'w_s2'], ['y_s2'], pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             constant('w_narrow', w(64, c)),
             helper.make_node('Conv', ['y_s2', 'w_narrow'], ['y_narrow'], pads=[1, 1, 1, 1]),
             constant('w_group', w(c, 32)),
             helper.make_node('Conv', ['y_narrow', 'w_group'], ['y_group'], pads=[1, 1, 1, 1],
                              group=2),
             constant('w_dilated', w(c, c)),
             helper.make_node('Conv', ['y_group', 'w_dilated'], ['y_dilated'],
                              pads=[2, 2, 2, 2], dilations=[2, 2]),
             constant('w_1x1', w(c, c, 1)),
             helper.make_node('Conv', ['y_dilated', 'w_1x1'], ['y_1x1'])]
    outputs = ['y_bias', 'y_shared_relu', 'y_1x1']
    return small_model(
        nodes, 'convs', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                       ['n', c, 'h', 'w'])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs], [])


def run_onnxruntime(model_bytes, feeds):
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(model_bytes, providers=['CPUExecutionProvider'])
    return [session.run(None, feed) for feed in feeds]


def run_openvino(model_bytes, feeds):
    ov = pytest.importorskip('openvino')
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model_bytes), 'CPU',
                                  {'INFERENCE_PRECISION_HINT': 'f32'})
    request = compiled.create_infer_request()
    return [[request.infer(feed)[port] for port in compiled.outputs] for feed in feeds]


@pytest.mark.parametrize('runtime', [run_onnxruntime, run_openvino])
def test_rewritten_graph_computes_the_same(runtime):
    original = conv_graph()
    rewritten = copy.deepcopy(original)
    assert winograd.rewrite(rewritten) == 5
    convs = [n for n in rewritten.graph.node if n.op_type == 'Conv']
    left = {n.output[0] for n in convs if not n.input[1].startswith('winograd')}
    assert left == {'y_s2', 'y_narrow', 'y_group', 'y_dilated', 'y_1x1'}
    ops = {n.op_type for n in rewritten.graph.node}
    assert 'BatchNormalization' not in ops and 'Add' not in ops  # folded into the weights
    # one session for every input size: sizes that are and are not multiples of the 4x4 tile
    feeds = [{'x': RNG.standard_normal(shape).astype(np.float32)}
             for shape in [(1, 128, 16, 20), (2, 128, 13, 21), (1, 128, 5, 3)]]
    expected = runtime(original.SerializeToString(), feeds)
    got = runtime(rewritten.SerializeToString(), feeds)
    for want_outputs, got_outputs in zip(expected, got):
        for want, value in zip(want_outputs, got_outputs):
            assert value.shape == want.shape
            scale = np.abs(want).max()
            assert np.abs(value - want).max() <= 1e-4 * scale, np.abs(value - want).max() / scale


def test_tensors_read_by_subgraphs_are_kept():
    """A conv output an If body reads is not folded away with its BatchNormalization, and a
    constant only an If body reads is not dropped as unused."""
    c = 128
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, c, 6, 7])
    body = lambda name, source: helper.make_graph(  # noqa: E731
        [helper.make_node('Identity', [source], [name])], name, [],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)])
    nodes = [constant('w', RNG.standard_normal((c, c, 3, 3)) * 0.05),
             constant('gamma', RNG.uniform(0.5, 2, c)), constant('beta', np.zeros(c)),
             constant('mean', np.zeros(c)), constant('var', np.ones(c)),
             constant('kept', RNG.standard_normal(3)),
             helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node('BatchNormalization', ['c', 'gamma', 'beta', 'mean', 'var'],
                              ['bn']),
             helper.make_node('If', ['cond'], ['branch'], then_branch=body('then', 'c'),
                              else_branch=body('else', 'kept'))]
    cond = helper.make_tensor_value_info('cond', TensorProto.BOOL, [])
    original = small_model(nodes, 'bodies', [x, cond],
                           [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                            for n in ('bn', 'branch')], [])
    rewritten = copy.deepcopy(original)
    assert winograd.rewrite(rewritten) == 1
    ops = [n.op_type for n in rewritten.graph.node]
    assert 'BatchNormalization' in ops and 'kept' in {o for n in rewritten.graph.node
                                                      for o in n.output}
    x_value = RNG.standard_normal((1, c, 6, 7)).astype(np.float32)
    feeds = [{'x': x_value, 'cond': np.array(flag)} for flag in (True, False)]
    for want, got in zip(run_onnxruntime(original.SerializeToString(), feeds),
                         run_onnxruntime(rewritten.SerializeToString(), feeds)):
        for a, b in zip(want, got):
            assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()


def test_only_wide_fp32_convolutions_are_rewritten():
    assert winograd.rewrite(conv_graph(channels=64)) == 0
    model = conv_graph()
    for init in model.graph.node:
        if init.op_type == 'Constant' and init.output[0] == 'w_bn':
            init.attribute[0].t.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init.attribute[0].t).astype(np.float16), 'w_bn_value'))
    assert winograd.rewrite(model) == 4  # the fp16 weight stays direct


def test_runtimes_load_the_rewritten_model_unless_turned_off(tmp_path):
    path = str(tmp_path / 'model.onnx')
    onnx.save(conv_graph(), path)
    options = PredictorOptions(backend='onnxruntime')
    source = runtime_model(path, options, 'ONNX Runtime')
    assert isinstance(source, bytes)
    assert sum(n.op_type == 'MatMul' for n in onnx.load_from_string(source).graph.node) == 2 * 5
    assert runtime_model(path, PredictorOptions(backend='onnxruntime', winograd=False),
                      'ONNX Runtime') == path
    onnx.save(conv_graph(channels=64), path)
    assert runtime_model(path, options, 'ONNX Runtime') == path  # nothing to rewrite
    onnx.save(conv_graph(), path)
    for direct in (PredictorOptions(run_mode='int8'),
                   PredictorOptions(enable_mkldnn_bfloat16=True)):
        assert runtime_model(path, direct, 'OpenVINO') == path  # int8 and bf16 run direct


def test_infer_parses_the_winograd_flag():
    from deploy.python.infer import build_parser
    base = ['--model_dir', 'm', '--image_file', 'x.jpg']
    assert build_parser().parse_args(base).winograd is True
    assert build_parser().parse_args(base + ['--winograd', 'False']).winograd is False
    with pytest.raises(SystemExit):
        build_parser().parse_args(base + ['--winograd', 'sometimes'])
