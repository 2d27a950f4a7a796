"""deploy/python/infer.py --backend onnxruntime|openvino: the same detections, pictures and
results.json as Paddle Inference on the same export (one image and a batch of two, which the
one-image ONNX graph takes in turn), --run_benchmark, precision flags, and one-line errors for a
missing model.onnx, a missing package and a corrupt model.onnx."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deploy.python import infer
from deploy.python.errors import DeployError
from deploy.python.image_io import read_image_rgb
from deploy.python.model_files import load_model_files
from deploy.python.predictor import PredictorOptions, create_predictor
from tests.test_deploy_fixtures import (DETECTIONS, deploy_model, dygraph_model,  # noqa: F401
                                        onnx_model, random_rgb, shapes_image, write_image)
from tests.tool_runner import assert_one_line_error

BOX_ATOL_PX = 1e-3
SCORE_ATOL = 1e-5
ONNX_BACKENDS = ('onnxruntime', 'openvino')


@pytest.fixture(scope='module')
def two_images(shapes_dataset, tmp_path_factory):
    """The two validation images, the second cropped to another size."""
    val = os.path.join(shapes_dataset, 'val')
    first, second = [os.path.join(val, n) for n in sorted(os.listdir(val))[:2]]
    cropped = write_image(tmp_path_factory.mktemp('images') / 'cropped.png',
                          read_image_rgb(second)[:100, :, ::-1])
    return [first, cropped]


def detect(model_dir, backend, images, batch_size):
    model = load_model_files(model_dir, backend)
    detector = infer.Detector(model, PredictorOptions(backend=backend, batch_size=batch_size))
    return detector.predict([read_image_rgb(path) for path in images], threshold=0.0)


def assert_same(reference, candidate):
    assert len(reference) == len(candidate)
    for ref, cand in zip(reference, candidate):
        np.testing.assert_array_equal(cand['class_ids'], ref['class_ids'])
        np.testing.assert_allclose(cand['scores'], ref['scores'], atol=SCORE_ATOL)
        np.testing.assert_allclose(cand['boxes'], ref['boxes'], atol=BOX_ATOL_PX)
        # Pasted at 0.5: a probability within 1e-4 of the threshold may flip one pixel.
        assert (cand['masks'] != ref['masks']).mean() < 1e-3


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
@pytest.mark.parametrize('batch_size', [1, 2])
def test_onnx_backends_equal_paddle_inference(onnx_model, deploy_model, two_images, backend,
                                              batch_size):
    reference = detect(onnx_model[2], 'paddle', two_images, batch_size)
    assert [len(d['scores']) for d in reference] == [DETECTIONS] * 2
    assert_same(reference, detect(onnx_model[2], backend, two_images, batch_size))
    # and the default (batched, non-ONNX) export of the same weights gives the same
    assert_same(detect(deploy_model[2], 'paddle', two_images, batch_size), reference)


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_cli_writes_the_same_results_and_pictures(onnx_model, two_images, tmp_path, backend):
    results = {}
    for name in ('paddle', backend):
        out = tmp_path / name
        rc = infer.main(['--model_dir', onnx_model[2], '--image_file', two_images[0],
                         '--output_dir', str(out), '--threshold', '0', '--save_results',
                         '--backend', name])
        assert rc == 0
        assert (out / os.path.basename(two_images[0])).is_file()
        results[name] = json.loads((out / 'results.json').read_text())['images'][0]
    ours, reference = results[backend]['detections'], results['paddle']['detections']
    assert len(ours) == len(reference) == DETECTIONS
    for a, b in zip(ours, reference):
        assert a['label'] == b['label']
        np.testing.assert_allclose(a['bbox_xyxy'], b['bbox_xyxy'], atol=1e-2)


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_run_benchmark(onnx_model, two_images, tmp_path, backend):
    rc = infer.main(['--model_dir', onnx_model[2], '--image_file', two_images[0],
                     '--output_dir', str(tmp_path), '--run_benchmark', '--warmup', '1',
                     '--repeats', '2', '--backend', backend])
    assert rc == 0
    summary = json.loads((tmp_path / 'benchmark.json').read_text())
    assert summary['backend'] == backend and summary['images'] == 1


def test_openvino_compiles_a_copy_per_input_shape(onnx_model, two_images, tmp_path):
    """The first SPECIALISED_SHAPES input shapes each run a model compiled for that shape, later
    shapes the dynamic model; all give Paddle Inference's detections, image by image."""
    from deploy.python.backends.openvino_backend import SPECIALISED_SHAPES
    assert SPECIALISED_SHAPES == 2
    third = write_image(tmp_path / 'third.png', read_image_rgb(two_images[0])[:, :90, ::-1])
    images = two_images + [third, two_images[0]]
    detector = infer.Detector(load_model_files(onnx_model[2], 'openvino'),
                              PredictorOptions(backend='openvino'))
    for path in images:
        reference = detect(onnx_model[2], 'paddle', [path], 1)
        assert_same(reference, detector.predict([read_image_rgb(path)], threshold=0.0))
    predictor = detector.predictor.runner
    assert len(predictor.specialised) == 2 and predictor.dynamic is not None
    for compiled, _ in predictor.specialised.values():
        assert all(port.get_partial_shape().is_static for port in compiled.inputs)
    assert not predictor.dynamic[0].inputs[0].get_partial_shape().is_static


def test_openvino_bf16_runs_and_stays_close(onnx_model, two_images):
    from deploy.python.cpu_features import has_bf16
    options = dict(backend='openvino', enable_mkldnn_bfloat16=True)
    model = load_model_files(onnx_model[2], 'openvino')
    if not has_bf16():  # the option is refused, in one line
        with pytest.raises(DeployError, match='AVX512-BF16'):
            create_predictor(model, PredictorOptions(**options))
        return
    detector = infer.Detector(model, PredictorOptions(**options))
    bf16 = detector.predict([read_image_rgb(two_images[0])], threshold=0.0)[0]
    fp32 = detect(onnx_model[2], 'openvino', two_images[:1], 1)[0]
    assert len(bf16['scores']) == len(fp32['scores'])
    assert not np.array_equal(bf16['scores'], fp32['scores'])  # bf16 really ran
    assert np.abs(np.sort(bf16['scores']) - np.sort(fp32['scores'])).max() < 0.05


def test_onnxruntime_bf16_is_refused_in_one_line(onnx_model, monkeypatch):
    # on a CPU with bf16 too: ONNX Runtime's CPU provider has no bf16 kernels
    from deploy.python import predictor
    monkeypatch.setattr(predictor, 'has_bf16', lambda: True)
    with pytest.raises(DeployError, match='ONNX Runtime has no bf16 CPU path'):
        create_predictor(load_model_files(onnx_model[2], 'onnxruntime'),
                         PredictorOptions(backend='onnxruntime', enable_mkldnn_bfloat16=True))


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_bf16_is_refused_on_a_cpu_without_it(onnx_model, backend, monkeypatch):
    from deploy.python import predictor
    monkeypatch.setattr(predictor, 'has_bf16', lambda: False)
    with pytest.raises(DeployError, match='neither AVX512-BF16 nor AMX-BF16; run fp32'):
        create_predictor(load_model_files(onnx_model[2], backend),
                         PredictorOptions(backend=backend, enable_mkldnn_bfloat16=True))


def run_script(*args, env=None):
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'deploy', 'python', 'infer.py')
    return subprocess.run([sys.executable, script] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=300, env=env)


def copy_export(onnx_model, target, without=()):
    shutil.copytree(onnx_model[2], target)
    for name in without:
        os.remove(os.path.join(target, name))
    return str(target)


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_missing_onnx_file(onnx_model, shapes_image, tmp_path, backend):
    model_dir = copy_export(onnx_model, tmp_path / 'export', without=['model.onnx'])
    run = run_script('--model_dir', model_dir, '--image_file', shapes_image, '--backend',
                     backend, '--output_dir', tmp_path / 'out')
    assert_one_line_error(run, 'model.onnx: missing', '--onnx')


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_corrupt_onnx_file(onnx_model, shapes_image, tmp_path, backend):
    model_dir = copy_export(onnx_model, tmp_path / 'export')
    with open(os.path.join(model_dir, 'model.onnx'), 'r+b') as f:
        f.seek(1000)
        f.write(os.urandom(4000))
        f.truncate(6000)
    run = run_script('--model_dir', model_dir, '--image_file', shapes_image, '--backend',
                     backend, '--output_dir', tmp_path / 'out')
    assert_one_line_error(run, 'model.onnx', 'cannot load the ONNX model')


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_missing_package_says_what_to_install(onnx_model, shapes_image, tmp_path, backend):
    shadow = tmp_path / 'shadow'
    shadow.mkdir()
    (shadow / f'{backend}.py').write_text(f"raise ImportError('No module named {backend}')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(shadow)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    run = run_script('--model_dir', onnx_model[2], '--image_file', shapes_image, '--backend',
                     backend, '--output_dir', tmp_path / 'out', env=env)
    assert_one_line_error(run, f'needs the {backend} package', 'requirements-onnx.txt')


def test_unknown_backend(onnx_model, shapes_image, tmp_path):
    run = run_script('--model_dir', onnx_model[2], '--image_file', shapes_image, '--backend',
                     'tensorflow', '--output_dir', tmp_path / 'out')
    assert_one_line_error(run, "--backend 'tensorflow'")
