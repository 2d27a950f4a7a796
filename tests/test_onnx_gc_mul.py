"""GC channel_mul in the ONNX export: the one-image form (the gate folded into the last conv's
weights, ppdet_gcnet.deploy.onnx_forms.gc_mul) against the original block, in dygraph and in ONNX
Runtime / OpenVINO after paddle2onnx; and its int8 rewrite (deploy/python/int8_channel_scale.py:
the gate taken back out of the weights) on small graphs and on the exported backbone."""

import numpy as np
import paddle
import pytest

from tests.test_lean_gc import Backbone, gc_resnet, relative_error

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deploy.python.int8_channel_scale import scale_after_conv  # noqa: E402
from ppdet_gcnet.deploy.lean_gc import LeanGCBottleNeck, use_lean_gc  # noqa: E402
from ppdet_gcnet.deploy.onnx_forms.gc_mul import OneImageLeanGCBottleNeck  # noqa: E402
from tests.onnx_graphs import run, small_model  # noqa: E402

MUL_FUSIONS = (['channel_mul'], ['channel_mul', 'channel_add'])


def one_image_form(net):
    """`net` (eval mode) switched, in place, to the lean form and then the one-image form."""
    assert use_lean_gc(net) == 13
    for layer in net.sublayers():
        if type(layer) is LeanGCBottleNeck:
            layer.__class__ = OneImageLeanGCBottleNeck
    return net


def images(count=2, seed=1):
    rng = np.random.RandomState(seed)
    return [rng.randn(1, 3, 64, 96).astype('float32') for _ in range(count)]


def dygraph_outputs(net, inputs):
    with paddle.no_grad():
        return [[o.numpy() for o in net({'image': paddle.to_tensor(x)})] for x in inputs]


@pytest.mark.parametrize('fusion', MUL_FUSIONS, ids='+'.join)
def test_one_image_form_equals_original_in_dygraph(fusion):
    inputs = images()
    reference = dygraph_outputs(gc_resnet(fusion), inputs)
    ours = dygraph_outputs(one_image_form(gc_resnet(fusion)), inputs)
    # the gates differ between the two images (else one image's weights would fit both)
    assert relative_error(reference[0], reference[1]) > 0.1
    for expected, got in zip(reference, ours):
        assert relative_error(expected, got) < 5e-5


def test_one_image_form_with_saturated_gates():
    """Gates sigmoid(t) = 0 zero a channel's weights: the block is then relu(a + short), as in
    the original."""
    nets = [gc_resnet(['channel_mul', 'channel_add']) for _ in range(2)]
    for net in nets:
        for block in net.gc_blocks:
            bias = block.channel_mul_conv[3].bias.numpy()
            bias[::2] = -200.0
            block.channel_mul_conv[3].bias.set_value(bias)
    inputs = images(1, seed=3)
    reference = dygraph_outputs(nets[0], inputs)[0]
    ours = dygraph_outputs(one_image_form(nets[1]), inputs)[0]
    assert all(np.isfinite(o).all() for o in ours)
    assert relative_error(reference, ours) < 5e-5


@pytest.fixture(scope='module')
def mul_backbone_onnx(tmp_path_factory):
    """The GC mul ResNet50 backbone in the one-image form, exported to Paddle and converted by
    the project's paddle2onnx step; with the original block's dygraph outputs on two images."""
    pytest.importorskip('paddle2onnx')
    from ppdet_gcnet.deploy import make_onednn_safe
    from ppdet_gcnet.deploy.onnx_export import write_onnx
    inputs = images()
    reference = dygraph_outputs(gc_resnet(['channel_mul']), inputs)
    net = gc_resnet(['channel_mul'])
    make_onednn_safe(net)
    one_image_form(net)
    directory = tmp_path_factory.mktemp('gc_mul_onnx')
    spec = [paddle.static.InputSpec([1, 3, None, None], 'float32', 'image')]
    paddle.jit.save(paddle.jit.to_static(Backbone(net), input_spec=spec, full_graph=True),
                    str(directory / 'model'))
    return write_onnx(str(directory)), inputs, reference


def test_one_image_form_in_onnx_runtime_and_openvino(mul_backbone_onnx):
    path, inputs, reference = mul_backbone_onnx
    model = onnx.load(path)
    producer = {out: n for n in model.graph.node for out in n.output}

    def weight_source(conv):
        node = producer.get(conv.input[1])
        while node is not None and node.op_type == 'Identity':
            node = producer.get(node.input[0])
        return getattr(node, 'op_type', None)
    # the 13 blocks' last convs take run-time weights: the gate folded in by a multiply
    assert sum(n.op_type == 'Conv' and weight_source(n) == 'Mul' for n in model.graph.node) == 13
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for x, expected in zip(inputs, reference):
        assert relative_error(expected, session.run(None, {'image': x})) < 1e-4
    openvino = pytest.importorskip('openvino')
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(path), 'CPU',
                                  {'INFERENCE_PRECISION_HINT': 'f32'})
    for x, expected in zip(inputs, reference):
        assert relative_error(expected, list(compiled({'image': x}).values())) < 1e-4


def _optimized_counts(source, path, ops):
    """{op: count} in the graph ONNX Runtime runs for `source` (fp32), or None when it runs no
    blocked (NCHWc) convolutions on this CPU."""
    nodes = _optimized(source, path)[1].node
    if not any(n.domain.endswith('nchwc') for n in nodes):
        return None
    return {op: sum(n.op_type == op and not n.domain for n in nodes) for op in ops}


def test_onnx_runtime_fp32_adds_the_gated_residual_blocked(mul_backbone_onnx, tmp_path):
    """What ONNX Runtime fp32 loads (runtime_model) for the GC mul backbone: each block's
    `relu(conv(y, W * s) + (short + b))` as `relu(unit(conv(y, W * s, b)) + short)`
    (deploy/python/gated_conv_blocked.py): 13 rewritten, the outputs those of the export (one
    addition regrouped), and ONNX Runtime fuses each residual add and relu into the unit conv;
    OpenVINO loads no such rewrite."""
    from deploy.python import gated_conv_blocked
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.predictor import PredictorOptions
    path, inputs, reference = mul_backbone_onnx
    options = PredictorOptions(backend='onnxruntime', winograd=False).check()
    source = runtime_model(path, options, 'ONNX Runtime')
    units = [n for n in onnx.load_from_string(source).graph.node
             if n.op_type == 'Conv' and n.input[0].startswith('gc_gated_conv_blocked/')]
    assert len(units) == 13
    original = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    rewritten = ort.InferenceSession(source, providers=['CPUExecutionProvider'])
    for x, expected in zip(inputs, reference):
        got = rewritten.run(None, {'image': x})
        assert relative_error(original.run(None, {'image': x}), got) < 1e-5
        assert relative_error(expected, got) < 1e-4
    before = _optimized_counts(path, str(tmp_path / 'before.onnx'), ('Add', 'Relu'))
    after = _optimized_counts(source, str(tmp_path / 'after.onnx'), ('Add', 'Relu'))
    if before is None:
        pytest.skip("ONNX Runtime runs no blocked (NCHWc) convolutions on this CPU")
    # per block: `short + b` and the residual add, and the relu, no longer run on their own
    assert before['Add'] - after['Add'] == 26 and before['Relu'] - after['Relu'] == 13
    for_openvino = runtime_model(path, PredictorOptions(backend='openvino', winograd=False)
                                 .check(), 'OpenVINO')
    plain = onnx.load(path) if for_openvino == path else onnx.load_from_string(for_openvino)
    assert gated_conv_blocked.rewrite(plain) == 13  # still the export's form


# --- the int8 rewrite -----------------------------------------------------------------------

C_IN, C, H, W = 4, 8, 6, 5


def _scaled_conv_graph(form='scaled'):
    """y -> conv(y, w * s) -> out, s = sigmoid(t) viewed [C, 1, 1, 1] (the one-image form)."""
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(rng.randn(C, C_IN, 1, 1).astype(np.float32), 'w'),
             numpy_helper.from_array(rng.randn(C).astype(np.float32), 'b'),
             numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), 'column')]
    nodes = [helper.make_node('Sigmoid', ['t'], ['s'], name='gate'),
             helper.make_node('Reshape', ['s', 'column'], ['s4'], name='column_view'),
             helper.make_node('Mul', ['w', 's4'], ['ws'], name='scale_weights')]
    outputs = [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, C, H, W])]
    if form == 'scaled':
        nodes.append(helper.make_node('Conv', ['y', 'ws'], ['out'], name='conv'))
    elif form == 'with_bias':   # a run-time-scaled conv with its own bias: not this form
        nodes.append(helper.make_node('Conv', ['y', 'ws', 'b'], ['out'], name='conv'))
    elif form == 'shared':      # the scaled weights are an output too: they must stay
        nodes.append(helper.make_node('Conv', ['y', 'ws'], ['out'], name='conv'))
        outputs.append(helper.make_tensor_value_info('ws', TensorProto.FLOAT, [C, C_IN, 1, 1]))
    inputs = [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, C_IN, H, W]),
              helper.make_tensor_value_info('t', TensorProto.FLOAT, [1, C, 1, 1])]
    return small_model(nodes, form, inputs, outputs, inits)


def _run(model):
    rng = np.random.RandomState(1)
    feed = {'y': rng.randn(1, C_IN, H, W).astype(np.float32),
            't': rng.randn(1, C, 1, 1).astype(np.float32) * 3}
    return run(model, feed)


def test_gate_moves_out_of_the_weights_and_the_function_stays():
    model = _scaled_conv_graph()
    before = _run(model)
    assert scale_after_conv(model) == ['out_scaled']
    onnx.checker.check_model(model)
    ops = [(n.op_type, list(n.input)) for n in model.graph.node]
    assert ('Conv', ['y', 'w']) in ops  # the constant weights, quantizable per channel
    assert ('Mul', ['out_unscaled', 's4_row']) in ops
    assert 'scale_weights' not in [n.name for n in model.graph.node]
    np.testing.assert_allclose(_run(model)[0], before[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('form', ['with_bias', 'shared'])
def test_other_scaled_convs_are_left_alone(form):
    model = _scaled_conv_graph(form)
    nodes = [n.SerializeToString() for n in model.graph.node]
    assert scale_after_conv(model) == []
    assert [n.SerializeToString() for n in model.graph.node] == nodes


def _scaled_residual_graph():
    """The one-image form's block end: relu(conv(y, w * s) + (short + b * u)), u = sigmoid(t)
    flattened to [C], s its [C, 1, 1, 1] view."""
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(rng.randn(C, C_IN, 1, 1).astype(np.float32), 'w'),
             numpy_helper.from_array(rng.randn(C).astype(np.float32), 'b'),
             numpy_helper.from_array(np.array([-1], np.int64), 'flat'),
             numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), 'column'),
             numpy_helper.from_array(np.array([1, -1, 1, 1], np.int64), 'row')]
    nodes = [helper.make_node('Sigmoid', ['t'], ['g'], name='gate'),
             helper.make_node('Reshape', ['g', 'flat'], ['u'], name='flat_gate'),
             helper.make_node('Reshape', ['u', 'column'], ['s4'], name='column_view'),
             helper.make_node('Mul', ['w', 's4'], ['ws'], name='scale_weights'),
             helper.make_node('Mul', ['b', 'u'], ['bu'], name='scale_bias'),
             helper.make_node('Reshape', ['bu', 'row'], ['bias_row'], name='bias_view'),
             helper.make_node('Add', ['short', 'bias_row'], ['sb'], name='inner'),
             helper.make_node('Conv', ['y', 'ws'], ['x'], name='conv'),
             helper.make_node('Add', ['x', 'sb'], ['r'], name='outer'),
             helper.make_node('Relu', ['r'], ['out'], name='relu')]
    inputs = [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, C_IN, H, W]),
              helper.make_tensor_value_info('short', TensorProto.FLOAT, [1, C, H, W]),
              helper.make_tensor_value_info('t', TensorProto.FLOAT, [1, C, 1, 1])]
    outputs = [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, C, H, W])]
    return small_model(nodes, 'residual', inputs, outputs, inits)


def test_gate_and_bias_go_back_into_the_conv_before_the_residual():
    """channel_mul alone: relu(conv(y, w * s) + (short + b * u)) -> relu(conv(y, w, b) * s +
    short), the bias back in the conv, no broadcast add left."""
    model = _scaled_residual_graph()
    rng = np.random.RandomState(1)
    feed = {'y': rng.randn(1, C_IN, H, W).astype(np.float32),
            'short': rng.randn(1, C, H, W).astype(np.float32),
            't': rng.randn(1, C, 1, 1).astype(np.float32) * 3}

    before = run(model, feed)[0]
    assert sorted(scale_after_conv(model)) == ['outer', 'x_scaled']
    onnx.checker.check_model(model)
    ops = {n.name: (n.op_type, list(n.input)) for n in model.graph.node}
    assert ops['conv'] == ('Conv', ['y', 'w', 'b'])
    assert ops['outer'] == ('Add', ['x', 'short'])
    assert not {'inner', 'bias_view', 'scale_bias', 'scale_weights'} & set(ops)
    np.testing.assert_allclose(run(model, feed)[0], before, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope='module')
def quantized_backbone(mul_backbone_onnx, tmp_path_factory):
    """The exported GC mul backbone quantized by quantize.py's recipe, every conv int8 (a
    backbone's last convs feed no other conv, like the heads' predictions)."""
    from onnxruntime import quantization
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from deploy.python.quantize import quantize_folded
    path, inputs, reference = mul_backbone_onnx
    directory = tmp_path_factory.mktemp('gc_mul_int8')
    folded = str(directory / 'folded.onnx')
    quant_pre_process(path, folded, skip_symbolic_shape=True, skip_onnx_shape=True)

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.images = iter(inputs)

        def get_next(self):
            image = next(self.images, None)
            return None if image is None else {'image': image}

    target = str(directory / 'int8.onnx')
    model, gc_nodes, kept = quantize_folded(quantization, folded, target, Reader(),
                                            prediction_convs_as='int8')
    return folded, target, model, gc_nodes, kept


def _optimized(source, path):
    """ONNX Runtime's session on `source` and the graph it runs (saved to `path`)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = path
    session = ort.InferenceSession(source, options, providers=['CPUExecutionProvider'])
    return session, onnx.load(path).graph


def test_quantized_backbone_runs_the_gate_as_qlinearmul(mul_backbone_onnx, quantized_backbone,
                                                          tmp_path):
    """The exported GC mul backbone, quantized by quantize.py's recipe: every block's last conv
    is a QLinearConv on constant weights followed by a QLinearMul, the residual adds and relus
    run as QLinearAdd with no dequantize / quantize pass between, and the output stays close
    to fp32."""
    _, inputs, reference = mul_backbone_onnx
    folded, target, model, gc_nodes, kept = quantized_backbone
    assert kept == []
    kinds = {n.name: n.op_type for n in model.graph.node}
    # per block: the gate multiply, the residual add (its bias term folded into the conv), relu
    assert sorted(kinds[name] for name in gc_nodes) == ['Add'] * 13 + ['Mul'] * 13 + ['Relu'] * 13
    rewritten = ort.InferenceSession(folded, providers=['CPUExecutionProvider'])
    for x, expected in zip(inputs, reference):  # the rewritten fp32 graph: the same function
        assert relative_error(expected, rewritten.run(None, {'image': x})) < 1e-4
    session, optimized = _optimized(target, str(tmp_path / 'optimized.onnx'))
    counts = {op: sum(n.op_type == op for n in optimized.node)
              for op in ('QLinearMul', 'QLinearConv')}
    assert counts['QLinearMul'] == 13 and counts['QLinearConv'] > 13
    producer = {out: n for n in optimized.node for out in n.output}
    requantized = [n.name for n in optimized.node if n.op_type == 'QuantizeLinear'
                   and getattr(producer.get(n.input[0]), 'op_type', '') == 'DequantizeLinear'
                   and getattr(producer.get(producer[n.input[0]].input[0]), 'op_type', '')
                   == 'QLinearAdd']
    assert requantized == []  # a GC block's relu left unfused would show as QLinearAdd->DQ->Q
    for x, expected in zip(inputs, reference):
        got = session.run(None, {'image': x})
        assert relative_error(expected, got) < 0.1  # int8 calibrated on these two images


def test_onnx_runtime_int8_gates_in_the_requantization(mul_backbone_onnx, quantized_backbone,
                                                       tmp_path):
    """What ONNX Runtime's int8 backend loads (runtime_model): the 13 gates carried by their
    conv's weight scale, no QLinearMul left, and the output as close to fp32 as the QDQ graph's
    (tests/test_int8_gate_scale.py checks the rounding itself against integer arithmetic)."""
    from deploy.python import int8_weight_range
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.predictor import PredictorOptions
    _, inputs, reference = mul_backbone_onnx
    target = quantized_backbone[1]
    source = runtime_model(target, PredictorOptions(backend='onnxruntime', run_mode='int8'),
                           'ONNX Runtime')
    session, optimized = _optimized(source, str(tmp_path / 'gated.onnx'))
    counts = {op: sum(n.op_type == op for n in optimized.node)
              for op in ('QLinearMul', 'QLinearConv')}
    # the QDQ graph as the backend runs it on this CPU without the gate rewrite (its weights
    # narrowed where the CPU's int8 sums saturate)
    qdq_model = onnx.load(target)
    if int8_weight_range.saturates('onnxruntime'):
        assert int8_weight_range.rewrite(qdq_model) > 0
    before = ort.InferenceSession(qdq_model.SerializeToString(),
                                  providers=['CPUExecutionProvider'])
    assert counts['QLinearMul'] == 0
    assert counts['QLinearConv'] == sum(n.op_type == 'QLinearConv' for n in _optimized(
        target, str(tmp_path / 'qdq.onnx'))[1].node)
    for x, expected in zip(inputs, reference):
        got, qdq = session.run(None, {'image': x}), before.run(None, {'image': x})
        # measured, images 1 / 2: 0.062 / 0.069 of fp32, the QDQ graph's 0.081 / 0.066 (a CPU
        # with VNNI); 0.159 / 0.101 against 0.162 / 0.095 (AVX2, 7-bit weights). A random
        # backbone's int8 error moves that much with rounding: exact 8-bit arithmetic (ONNX
        # Runtime's graph optimizations off) gives 0.117 / 0.067 there.
        assert relative_error(expected, got) < min(0.2, 1.25 * relative_error(expected, qdq))
        assert relative_error(qdq, got) < 0.1


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_int8_backends_read_the_context_channels_last(mul_backbone_onnx, quantized_backbone,
                                                      backend, monkeypatch):
    """What both int8 backends load (runtime_model) reads the 13 contexts channels-last
    (deploy/python/context_channels_last.py, here on the quantizer's form: y dequantized, the
    logits without their bias), and computes what the QDQ graph computes: the same sums in
    another order, rounded to the same levels but where the order moves a value across a
    rounding boundary."""
    from deploy.python import int8_gate_scale, int8_weight_range
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.predictor import PredictorOptions
    monkeypatch.setattr(int8_weight_range, 'saturates', lambda name: False)
    monkeypatch.setattr(int8_gate_scale, 'rewrite', lambda model: 0)  # the context alone
    _, inputs, _ = mul_backbone_onnx
    target = quantized_backbone[1]
    source = runtime_model(target, PredictorOptions(backend=backend, run_mode='int8'), backend)
    loaded = onnx.load_from_string(source)
    assert sum(n.op_type == 'Transpose' and list(n.attribute[0].ints) == [0, 2, 3, 1]
               for n in loaded.graph.node) == 13
    if backend == 'onnxruntime':
        def run(model):
            session = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
            return lambda x: session.run(None, {'image': x})
    else:
        import openvino
        core = openvino.Core()

        def run(model):
            compiled = core.compile_model(core.read_model(model), 'CPU',
                                          {'INFERENCE_PRECISION_HINT': 'f32'})
            return lambda x: list(compiled({'image': x}).values())
    qdq, channels_last = run(target), run(source)
    for x in inputs:
        # measured 0.0 in both (AVX2 CPU): no value crossed a level
        assert relative_error(qdq(x), channels_last(x)) < 0.005
