"""The lean GC add residuals' shape annotations in `model.onnx`: written for every residual and
nothing else, the model still computes what the Paddle export computes (ONNX Runtime and OpenVINO,
two input sizes), and ONNX Runtime fuses each annotated residual add + relu into its conv."""
import os

import numpy as np
import paddle
import pytest

import ppdet_gcnet  # noqa: F401  (registers GCResNet, applies compat)
from ppdet_gcnet.deploy import make_onednn_safe
from ppdet_gcnet.deploy.lean_gc import use_lean_gc
from tests.test_lean_gc import Backbone, gc_resnet, relative_error
from tests.test_onnx_export import paddle_inference

LEAN_BLOCKS = 13  # res3-res5 of a ResNet50: 4 + 6 + 3 bottlenecks


def _inputs():
    rng = np.random.RandomState(4)
    # the second size is no multiple of the backbone's stride (odd sizes after each stride 2)
    return [rng.randn(1, 3, 64, 96).astype('float32'), rng.randn(1, 3, 72, 100).astype('float32')]


@pytest.fixture(scope='module')
def lean_add_export(tmp_path_factory):
    """A GC add ResNet50-vd backbone in the lean form, saved as Paddle exports it and converted
    by the exporter's ONNX step."""
    pytest.importorskip('paddle2onnx')
    from ppdet_gcnet.deploy.onnx_export import write_onnx
    net = gc_resnet(['channel_add'])
    make_onednn_safe(net)
    assert use_lean_gc(net) == LEAN_BLOCKS
    directory = tmp_path_factory.mktemp('lean_add')
    spec = [paddle.static.InputSpec([None, 3, None, None], 'float32', 'image')]
    paddle.jit.save(paddle.jit.to_static(Backbone(net), input_spec=spec, full_graph=True),
                    str(directory / 'model'))
    paddle.disable_static()
    messages = []
    write_onnx(str(directory), log=messages.append)
    return str(directory), messages


def _ort_session(path, optimized=None):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if optimized:
        options.optimized_model_filepath = optimized
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def test_every_lean_residual_is_annotated(lean_add_export):
    import onnx
    directory, messages = lean_add_export
    model = onnx.load(os.path.join(directory, 'model.onnx'))
    onnx.checker.check_model(model)
    shapes = {info.name: [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]
              for info in model.graph.value_info}
    # two names or more per residual (paddle2onnx's Identity copies), one shared shape each
    residuals = {tuple(shape) for shape in shapes.values()}
    assert len(residuals) == LEAN_BLOCKS
    assert sorted(shape[1] for shape in residuals) == [512] * 4 + [1024] * 6 + [2048] * 3
    assert any(f"'gc_residual_shapes': {LEAN_BLOCKS}" in m for m in messages), messages


def _runner(runtime, path):
    """A function: image -> the outputs of the ONNX file `path` in `runtime` (fp32)."""
    if runtime == 'onnxruntime':
        session = _ort_session(path)
        return lambda image: session.run(None, {'image': image})
    import openvino
    compiled = openvino.Core().compile_model(path, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    return lambda image: list(compiled({'image': image}).values())


@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_annotated_model_equals_the_paddle_export(lean_add_export, runtime):
    directory, _ = lean_add_export
    run = _runner(runtime, os.path.join(directory, 'model.onnx'))
    for image in _inputs():
        reference = paddle_inference(directory, {'image': image})
        outputs = run(image)
        assert [o.shape for o in outputs] == [r.shape for r in reference]
        assert relative_error(reference, outputs) < 1e-4


def test_onnxruntime_fuses_the_annotated_residuals(lean_add_export, tmp_path):
    """ONNX Runtime's optimised graph: with the annotations, each residual's add and relu are
    gone into the blocked conv (13 fewer of each); without them, they stay."""
    import onnx
    directory, _ = lean_add_export
    annotated = onnx.load(os.path.join(directory, 'model.onnx'))
    plain = onnx.load(os.path.join(directory, 'model.onnx'))
    del plain.graph.value_info[:]
    counts = {}
    for name, model in (('annotated', annotated), ('plain', plain)):
        source, optimized = str(tmp_path / f'{name}.onnx'), str(tmp_path / f'{name}.opt.onnx')
        onnx.save(model, source)
        _ort_session(source, optimized)
        nodes = onnx.load(optimized).graph.node
        counts[name] = {op: sum(n.op_type == op and not n.domain for n in nodes)
                        for op in ('Add', 'Relu')}
        counts[name]['blocked'] = sum(n.domain.endswith('nchwc') for n in nodes)
    if not counts['plain']['blocked']:
        pytest.skip("ONNX Runtime runs no blocked (NCHWc) convolutions on this CPU")
    assert counts['plain']['Relu'] - counts['annotated']['Relu'] == LEAN_BLOCKS, counts
    assert counts['plain']['Add'] - counts['annotated']['Add'] == LEAN_BLOCKS, counts


def test_onnxruntime_fp32_adds_the_context_by_rows(lean_add_export):
    """deploy's ONNX Runtime fp32 load (runtime_model) adds each lean residual's context as rows
    (deploy/python/context_add_rows.py): 13 rewritten, the same outputs bit for bit at both
    input sizes; OpenVINO, and a model without the annotations, load without it."""
    import onnx
    from deploy.python import context_add_rows
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.predictor import PredictorOptions
    directory, _ = lean_add_export
    path = os.path.join(directory, 'model.onnx')
    options = PredictorOptions(backend='onnxruntime', winograd=False).check()
    rewritten = onnx.load_from_string(runtime_model(path, options, 'ONNX Runtime'))
    expands = [n for n in rewritten.graph.node if n.op_type == 'Expand']
    assert len(expands) == LEAN_BLOCKS
    producers = {out: n for n in rewritten.graph.node for out in n.output}
    consumers = {}
    for node in rewritten.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for expand in expands:
        (unit,) = consumers[expand.output[0]]
        (add,) = consumers[unit.output[0]]
        groups = {a.name: a.i for a in unit.attribute}['group']
        assert unit.op_type == 'Conv' and add.op_type == 'Add' and groups in (512, 1024, 2048)
        assert producers[expand.input[0]].op_type != 'Expand'
    original, rows = _ort_session(path), _ort_session(rewritten.SerializeToString())
    for image in _inputs():
        for a, b in zip(original.run(None, {'image': image}), rows.run(None, {'image': image})):
            assert np.array_equal(a, b)
    for_openvino = runtime_model(path, PredictorOptions(backend='openvino', winograd=False)
                                 .check(), 'OpenVINO')  # its context read, not the rows
    assert 'Expand' not in [n.op_type for n in onnx.load_from_string(for_openvino).graph.node]
    plain = onnx.load(path)
    del plain.graph.value_info[:]
    assert context_add_rows.rewrite(plain) == 0


def _transposes_to_channels_last(model):
    return sum(n.op_type == 'Transpose' and list(n.attribute[0].ints) == [0, 2, 3, 1]
               for n in model.graph.node)


@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_context_read_channels_last_computes_the_same(lean_add_export, runtime, tmp_path):
    """deploy/python/context_channels_last.py on the fp32 export (its logits carry a bias, behind
    Identity copies): the 13 context reads rewritten, the outputs those of the export at both
    input sizes (the same sums in another order), and the rewritten form not matched again."""
    import onnx
    from deploy.python import context_channels_last
    directory, _ = lean_add_export
    path = os.path.join(directory, 'model.onnx')
    model = onnx.load(path)
    assert context_channels_last.rewrite(model) == LEAN_BLOCKS
    onnx.checker.check_model(model)
    assert _transposes_to_channels_last(model) == LEAN_BLOCKS
    assert context_channels_last.rewrite(model) == 0
    onnx.save(model, str(tmp_path / 'channels_last.onnx'))
    original = _runner(runtime, path)
    channels_last = _runner(runtime, str(tmp_path / 'channels_last.onnx'))
    for image in _inputs():
        assert relative_error(original(image), channels_last(image)) < 1e-5


def test_context_read_channels_last_where_the_runtime_keeps_maps_so(lean_add_export):
    """runtime_model reads the context channels-last for OpenVINO fp32, not for ONNX Runtime fp32
    (its blocked layout would add a reorder); int8: tests/test_onnx_gc_mul.py."""
    import onnx
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.predictor import PredictorOptions
    directory, _ = lean_add_export
    path = os.path.join(directory, 'model.onnx')
    for backend, expected in (('openvino', LEAN_BLOCKS), ('onnxruntime', 0)):
        options = PredictorOptions(backend=backend, winograd=False).check()
        loaded = onnx.load_from_string(runtime_model(path, options, backend))
        assert _transposes_to_channels_last(loaded) == expected, backend
