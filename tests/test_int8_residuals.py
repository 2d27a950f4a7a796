"""deploy/python/int8_residuals.py: GC residuals reordered so that the context term is added last,
on small ONNX graphs checked against ONNX Runtime before and after, and in a quantized GC export,
where ONNX Runtime then runs both adds of every GC residual as QLinearAdd."""
import numpy as np
import pytest

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deploy.python.int8_residuals import add_context_last, rewrite_file  # noqa: E402
from tests.onnx_graphs import run, small_model  # noqa: E402
from tests.test_deploy_fixtures import (dygraph_model, onnx_model,  # noqa: E402,F401
                                        shapes_image)

C_IN, C, H, W = 4, 8, 6, 5


def _graph(form):
    """y -> conv -> x; ctx -> 1x1 conv -> t ([1, C, 1, 1]); a residual of `form` -> relu."""
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(rng.randn(C, C_IN, 1, 1).astype(np.float32), 'w'),
             numpy_helper.from_array(rng.randn(C, C, 1, 1).astype(np.float32), 'wt')]
    nodes = [helper.make_node('Conv', ['y', 'w'], ['x'], name='conv'),
             helper.make_node('Conv', ['ctx', 'wt'], ['t'], name='context_conv')]
    if form == 'lean':        # relu(x + (short + t))
        nodes += [helper.make_node('Add', ['short', 't'], ['s'], name='inner'),
                  helper.make_node('Add', ['x', 's'], ['r'], name='outer')]
    elif form == 'original':  # relu((x + t) + short)
        nodes += [helper.make_node('Add', ['x', 't'], ['s'], name='inner'),
                  helper.make_node('Add', ['s', 'short'], ['r'], name='outer')]
    elif form == 'done':      # relu((x + short) + t): nothing to move
        nodes += [helper.make_node('Add', ['x', 'short'], ['s'], name='inner'),
                  helper.make_node('Add', ['s', 't'], ['r'], name='outer')]
    elif form == 'three_maps':  # relu(x + (short + short)): no vector, not a GC residual
        nodes += [helper.make_node('Add', ['short', 'short'], ['s'], name='inner'),
                  helper.make_node('Add', ['x', 's'], ['r'], name='outer')]
    elif form == 'shared':    # the inner sum is also an output: it cannot move
        nodes += [helper.make_node('Add', ['short', 't'], ['s'], name='inner'),
                  helper.make_node('Add', ['x', 's'], ['r'], name='outer')]
    nodes.append(helper.make_node('Relu', ['r'], ['out'], name='relu'))
    inputs = [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, C_IN, H, W]),
              helper.make_tensor_value_info('short', TensorProto.FLOAT, [1, C, H, W]),
              helper.make_tensor_value_info('ctx', TensorProto.FLOAT, [1, C, 1, 1])]
    outputs = [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, C, H, W])]
    if form == 'shared':
        outputs.append(helper.make_tensor_value_info('s', TensorProto.FLOAT, [1, C, H, W]))
    return small_model(nodes, form, inputs, outputs, inits)


def _run(model):
    rng = np.random.RandomState(1)
    feed = {'y': rng.randn(1, C_IN, H, W).astype(np.float32),
            'short': rng.randn(1, C, H, W).astype(np.float32),
            'ctx': rng.randn(1, C, 1, 1).astype(np.float32)}
    return run(model, feed)


def _adds(model):
    """{add name: its inputs}, the two maps of the inner add in either order."""
    adds = {n.name: list(n.input) for n in model.graph.node if n.op_type == 'Add'}
    adds['inner'] = sorted(adds['inner'])
    return adds


@pytest.mark.parametrize('form', ['lean', 'original'])
def test_context_term_moves_last_and_the_function_stays(form):
    model = _graph(form)
    before = _run(model)
    assert add_context_last(model) == ['outer']
    onnx.checker.check_model(model)  # still topologically sorted
    assert _adds(model) == {'inner': ['short', 'x'], 'outer': ['s', 't']}
    order = [n.name for n in model.graph.node]
    assert order.index('conv') < order.index('inner') < order.index('outer')
    np.testing.assert_allclose(_run(model)[0], before[0], rtol=1e-6, atol=1e-6)
    assert not np.array_equal(before[0], 0)


def test_already_last_is_reported_and_left():
    model = _graph('done')
    assert add_context_last(model) == ['outer']
    assert _adds(model) == {'inner': ['short', 'x'], 'outer': ['s', 't']}


@pytest.mark.parametrize('form', ['three_maps', 'shared'])
def test_other_residuals_are_left_alone(form):
    model = _graph(form)
    adds = _adds(model)
    assert add_context_last(model) == []
    assert _adds(model) == adds


def test_rewrite_file_replaces_the_file(tmp_path):
    path = str(tmp_path / 'm.onnx')
    onnx.save(_graph('lean'), path)
    model, gc_nodes = rewrite_file(path)
    # the context add, and the relu after it (quantized, folded into the add's output)
    assert gc_nodes == ['outer', 'relu'] and _adds(model) == _adds(onnx.load(path))
    assert _adds(onnx.load(path)) == {'inner': ['short', 'x'], 'outer': ['s', 't']}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.onnx']


def _optimized_ops(path, tmp_path):
    """Op counts of the graph ONNX Runtime actually runs for the model at `path`."""
    import collections
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / 'optimized.onnx')
    ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath)
                               .graph.node)


def test_quantized_gc_export_runs_both_residual_adds_as_qlinearadd(onnx_model, shapes_image,
                                                                   tmp_path, monkeypatch):
    import shutil
    from deploy.python import int8_residuals
    from deploy.python.quantize import quantize_export
    blocks = sum(getattr(layer, 'gc_block', None) is not None
                 for layer in onnx_model[1].sublayers())
    counts = {}
    for variant in ('reordered', 'as exported'):
        export = str(tmp_path / variant)
        shutil.copytree(onnx_model[2], export)
        if variant == 'as exported':
            monkeypatch.setattr(int8_residuals, 'rewrite_file', lambda path: (onnx.load(path), []))
        path = quantize_export(export, [shapes_image], log=lambda message: None)
        counts[variant] = _optimized_ops(path, tmp_path)
    assert blocks > 0
    assert counts['reordered']['QLinearAdd'] - counts['as exported']['QLinearAdd'] == 2 * blocks
    assert counts['reordered']['QLinearConv'] == counts['as exported']['QLinearConv'] > 0
