"""int8 on CPU: deploy/python/quantize.py writes `model_int8.onnx` (convolutions quantized, the
detection parts and the heads' prediction convolutions left fp32) by write-then-rename, deploy
runs it with --run_mode int8 on ONNX Runtime and OpenVINO, its detections stay close to fp32, and
the errors are one line.

The model is the deploy tests' quickstart GC Mask R-CNN (random weights, BatchNorm calibrated)
with its proposals forced (`force_proposals`: RPN and box regression zeroed), so every box it
outputs is an anchor, exactly the same in fp32 and int8: int8 can change only the class scores,
and through them which DETECTIONS boxes are kept. With random weights the scores cluster (0.30-0.35
on one test image, 0.82-0.93 on the other), so many are near-ties at the top-K cut and swap.
Measured on the two test images (BatchNorm folded before quantizing), ONNX Runtime / OpenVINO:
5 and 10 / 7 and 7 of the 12 boxes shared, a shared box's score moved by at most 0.018 / 0.035,
the sorted top-K scores by at most 0.022 / 0.025 (2-3 % of a score). Asserted: the sorted top-K
scores and the shared boxes' scores within 0.05, at least a quarter of the boxes shared (chance
level: under 1 %).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from deploy.python import infer
from deploy.python.errors import DeployError
from deploy.python.image_io import read_image_rgb
from deploy.python.model_files import load_model_files
from deploy.python.predictor import PredictorOptions, create_predictor
from tests.test_deploy_fixtures import (DETECTIONS, LABELS, build_model,  # noqa: F401
                                        dygraph_model, onnx_model, preprocessed, shapes_image)
from tests.tool_runner import assert_one_line_error

ONNX_BACKENDS = ('onnxruntime', 'openvino')
MIN_SHARED = 0.25  # chance level: 12 of ~3000 (proposal, class) candidates
SCORE_ATOL = 0.05
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def val_images(shapes_dataset):
    val = os.path.join(shapes_dataset, 'val')
    return [os.path.join(val, n) for n in sorted(os.listdir(val))]


@pytest.fixture(scope='module')
def int8_build(repo_root, tmp_path_factory, shapes_image, val_images):
    """An --onnx export with forced proposals, quantized on the validation images, and the
    weights of the heads' prediction convolutions (the RPN's objectness and box deltas, the mask
    logits), read from the model."""
    from deploy.python.quantize import quantize_export
    from ppdet_gcnet.deploy.export import export_model, force_proposals
    cfg, model = build_model(repo_root, preprocessed(shapes_image))
    force_proposals(model)
    predictions = {name: getattr(head, name).weight.numpy() for head, name in (
        (model.rpn_head, 'rpn_rois_score'), (model.rpn_head, 'rpn_rois_delta'),
        (model.mask_head, 'mask_fcn_logits'))}
    export_dir = str(tmp_path_factory.mktemp('export') / 'gc_add_int8')
    export_model(cfg, model, export_dir, raw_masks=True, onnx=True, label_list=LABELS)
    quantize_export(export_dir, val_images, log=lambda message: None)
    return export_dir, predictions


@pytest.fixture(scope='module')
def int8_export(int8_build):
    return int8_build[0]


def conv_weights(graph):
    """{Conv node name: its weight, as stored (int8 behind a DequantizeLinear, else float)}."""
    from onnx import numpy_helper
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    weights = {}
    for node in graph.node:
        if node.op_type == 'Conv':
            name = node.input[1]
            if name in producers and producers[name].op_type == 'DequantizeLinear':
                name = producers[name].input[0]
            weights[node.name] = initializers[name]
    return weights


def test_convolutions_are_quantized_and_nothing_else(int8_build):
    import collections
    import onnx
    int8_export, predictions = int8_build
    assert sorted(os.listdir(int8_export)) == sorted(
        ['infer_cfg.yml', 'model.json', 'model.pdiparams', 'model.onnx', 'model_int8.onnx'])
    graph = onnx.load(os.path.join(int8_export, 'model_int8.onnx')).graph
    fp32_graph = onnx.load(os.path.join(int8_export, 'model.onnx')).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == 'Conv']
    assert len(convs) > 20
    # The convolutions left fp32 are exactly those whose weights are the prediction layers' (one
    # per FPN level for the RPN's two, one for the mask logits), their weights unchanged; every
    # other convolution reads an activation and a weight dequantized from int8.
    weights = conv_weights(graph)
    matches = {layer: {name for name, w in weights.items()
                       if w.dtype == np.float32 and w.shape == ref.shape and np.array_equal(w, ref)}
               for layer, ref in predictions.items()}
    levels = len(matches['rpn_rois_score'])
    assert levels >= 4 and len(matches['rpn_rois_delta']) == levels
    assert len(matches['mask_fcn_logits']) == 1
    kept = set().union(*matches.values())
    assert len(kept) == 2 * levels + 1
    for node in convs:
        dequantized = [producers.get(name) == 'DequantizeLinear' for name in node.input[:2]]
        assert dequantized == ([False] * 2 if node.name in kept else [True] * 2), node.name
    # BatchNorm is folded into the convolutions before quantizing; the detection ops stay as in
    # the fp32 graph, nothing is replaced by a quantized operator, no fully connected weight is
    # int8.
    ops = collections.Counter(n.op_type for n in graph.node)
    fp32_ops = collections.Counter(n.op_type for n in fp32_graph.node)
    assert ops['BatchNormalization'] == 0 < fp32_ops['BatchNormalization']
    assert ops['Conv'] == fp32_ops['Conv']
    for op in ('RoiAlign', 'NonMaxSuppression', 'TopK'):
        assert ops[op] == fp32_ops[op] > 0, op
    assert not [op for op in ops if op.startswith('QLinear') or op.endswith('Integer')]
    for node in graph.node:
        if node.op_type in ('MatMul', 'Gemm'):
            assert producers.get(node.input[1]) != 'DequantizeLinear', node.name


def test_prediction_convolutions_int8_quantizes_every_convolution(int8_export, val_images,
                                                                tmp_path):
    """--prediction_convs int8: the former recipe, every convolution behind int8 inputs."""
    import shutil
    import onnx
    from deploy.python.quantize import main
    model_dir = str(tmp_path / 'export')
    shutil.copytree(int8_export, model_dir)
    assert main(['--model_dir', model_dir, '--calib_image_dir', os.path.dirname(val_images[0]),
                 '--prediction_convs', 'int8', '--check_num', '0']) == 0
    graph = onnx.load(os.path.join(model_dir, 'model_int8.onnx')).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == 'Conv']
    assert len(convs) > 20
    for node in convs:
        assert [producers.get(name) for name in node.input[:2]] == ['DequantizeLinear'] * 2
    with pytest.raises(DeployError, match="'int4'"):
        from deploy.python.quantize import quantize_export
        quantize_export(model_dir, val_images, prediction_convs_as='int4')


def detections(model_dir, backend, run_mode, images):
    detector = infer.Detector(load_model_files(model_dir, backend),
                              PredictorOptions(backend=backend, run_mode=run_mode))
    return [detector.predict([read_image_rgb(path)], 0.0)[0] for path in images]


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_int8_detections_are_close_to_fp32(int8_export, val_images, backend):
    fp32 = detections(int8_export, backend, 'paddle', val_images)
    int8 = detections(int8_export, backend, 'int8', val_images)
    for ref, cand in zip(fp32, int8):
        assert len(ref['scores']) == len(cand['scores']) == DETECTIONS
        # If no candidate's score moves by more than e, neither does the k-th highest score,
        # whichever boxes swap at the top-K cut.
        np.testing.assert_allclose(np.sort(cand['scores']), np.sort(ref['scores']),
                                   atol=SCORE_ATOL)
        keys = {(int(c), *np.round(b, 3).tolist()): s
                for c, b, s in zip(cand['class_ids'], cand['boxes'], cand['scores'])}
        shared = [(keys[(int(c), *np.round(b, 3).tolist())], s)
                  for c, b, s in zip(ref['class_ids'], ref['boxes'], ref['scores'])
                  if (int(c), *np.round(b, 3).tolist()) in keys]
        assert len(shared) >= MIN_SHARED * DETECTIONS
        np.testing.assert_allclose(*np.array(shared).T, atol=SCORE_ATOL)


def run_tool(script, *args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'python', script)]
                          + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_infer_cli_runs_int8(int8_export, shapes_image, tmp_path):
    run = run_tool('infer.py', '--model_dir', int8_export, '--image_file', shapes_image,
                   '--backend', 'openvino', '--run_mode', 'int8', '--output_dir', tmp_path,
                   '--threshold', '0', '--save_results')
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"{DETECTIONS} detections" in run.stdout
    assert os.path.isfile(tmp_path / 'results.json')


def test_failed_quantization_leaves_the_old_model(int8_export, tmp_path):
    import shutil
    from deploy.python.quantize import quantize_export
    model_dir = str(tmp_path / 'export')
    shutil.copytree(int8_export, model_dir)
    before = os.path.getmtime(os.path.join(model_dir, 'model_int8.onnx'))
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not an image')
    with pytest.raises(DeployError, match='broken.jpg'):
        quantize_export(model_dir, [str(broken)])
    assert os.path.getmtime(os.path.join(model_dir, 'model_int8.onnx')) == before
    assert not [n for n in os.listdir(model_dir) if n.endswith('.partial')]


def test_missing_int8_model_says_how_to_make_it(onnx_model):
    model = load_model_files(onnx_model[2], 'openvino')
    with pytest.raises(DeployError, match='model_int8.onnx: missing.*quantize.py'):
        create_predictor(model, PredictorOptions(backend='openvino', run_mode='int8'))


def test_paddle_backend_int8_is_refused_in_one_line():
    with pytest.raises(DeployError, match='no CPU int8 path.*--backend openvino'):
        PredictorOptions(run_mode='int8').check()


def test_missing_quantizer_says_what_to_install(onnx_model, shapes_image, tmp_path):
    shadow = tmp_path / 'shadow'
    shadow.mkdir()
    (shadow / 'onnxruntime.py').write_text("raise ImportError('No module named onnxruntime')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(shadow)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    run = run_tool('quantize.py', '--model_dir', onnx_model[2], '--calib_image_dir',
                   os.path.dirname(shapes_image), env=env)
    assert_one_line_error(run, 'needs the onnxruntime package', 'requirements-onnx.txt')
    assert not os.path.exists(os.path.join(onnx_model[2], 'model_int8.onnx'))


def test_benchmark_int8_modes(repo_root, shapes_dataset, tmp_path):
    """deploy/benchmark.py's int8 modes quantize each --onnx export on the benchmark's image and
    report int8 against fp32 of the same backend (read back; no timing asserted)."""
    import json
    from deploy import benchmark
    from tests.tiny_config import write_tiny_config
    config = write_tiny_config(repo_root, shapes_dataset, tmp_path, name='tiny_gc_add',
                               backbone='GCResNet', test_proposals=32)
    out = tmp_path / 'bench'
    benchmark.run(benchmark.parse_args([
        '--output_dir', str(out), '--size', '96', '96', '--image_size', '96', '128',
        '--detections', '5', '--warmup', '0', '--repeats', '1', '--modes',
        'openvino_fp32,openvino_int8', '--configs', 'gc_add', '--lean', 'off',
        '--torchvision', 'off', '--cpu_threads', '1', '--config_file',
        f"gc_add={config}"]))
    report = json.loads((out / 'benchmark_inference.json').read_text())
    assert report['modes']['openvino_int8']['gc_add']['runs'] == 1
    assert os.path.isfile(out / 'export_onnx' / 'gc_add' / 'model_int8.onnx')
    assert set(report['agreement_int8_vs_fp32']['openvino_int8']) == {'gc_add'}
