"""deploy/python/infer.py end to end: results JSON, visualised images, image directories with odd
and broken files, the large-image path, the benchmark report, and the script's exit codes."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from deploy.python import infer
from deploy.python.image_io import read_image_rgb
from deploy.python.model_files import load_model_files
from deploy.python.predictor import PredictorOptions
from tests.test_deploy_fixtures import (DETECTIONS, LABELS, deploy_model,  # noqa: F401
                                        dygraph_model, pasted_mask_model, random_rgb,
                                        shapes_image, write_image)


def decode_rle(segmentation):
    from pycocotools import mask as mask_util
    return mask_util.decode({'size': segmentation['size'],
                             'counts': segmentation['counts'].encode('ascii')})


def run_cli(*args):
    return infer.main([str(a) for a in args])


def test_single_image_results_and_visualisation(deploy_model, shapes_image, tmp_path):
    out = tmp_path / 'out'
    rc = run_cli('--model_dir', deploy_model[2], '--image_file', shapes_image, '--output_dir', out,
                 '--threshold', 0.0, '--save_results', '--enable_mkldnn', '--cpu_threads', 1)
    assert rc == 0
    results = json.loads((out / 'results.json').read_text())
    assert results['failures'] == []
    (image,) = results['images']
    assert (image['height'], image['width']) == (128, 128)
    assert len(image['detections']) == DETECTIONS
    for det in image['detections']:
        assert det['label'] in LABELS and 0.0 <= det['score'] <= 1.0
        x1, y1, x2, y2 = det['bbox_xyxy']
        assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 128
        assert decode_rle(det['segmentation']).shape == (128, 128)
    drawn = cv2.imread(str(out / os.path.basename(shapes_image)))
    assert drawn.shape == (128, 128, 3)
    assert not np.array_equal(drawn[..., ::-1], read_image_rgb(shapes_image)), 'nothing drawn'


def test_image_dir_with_odd_and_broken_files(deploy_model, tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    write_image(images / 'color.jpg', random_rgb(96, 128))
    write_image(images / 'grey.png', random_rgb(64, 64)[..., 0])
    write_image(images / 'rgba.png', np.dstack([random_rgb(64, 80), np.full((64, 80), 128,
                                                                            np.uint8)]))
    write_image(images / 'deep.png', (random_rgb(64, 64).astype(np.uint16) * 257))
    write_image(images / 'dot.png', np.full((1, 1, 3), 200, np.uint8))
    (images / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 definitely not a jpeg')
    (images / 'readme.txt').write_text('not an image')
    out = tmp_path / 'out'
    rc = run_cli('--model_dir', deploy_model[2], '--image_dir', images, '--output_dir', out,
                 '--threshold', 0.0, '--save_results', '--batch_size', 2)
    assert rc == 1  # one image failed, the others were processed
    results = json.loads((out / 'results.json').read_text())
    assert [f['file'] for f in results['failures']] == [str(images / 'broken.jpg')]
    done = {os.path.basename(r['file']): r for r in results['images']}
    assert sorted(done) == ['color.jpg', 'deep.png', 'dot.png', 'grey.png', 'rgba.png']
    assert (done['dot.png']['height'], done['dot.png']['width']) == (1, 1)
    for name, record in done.items():
        assert os.path.isfile(out / name)
        for det in record['detections']:
            assert decode_rle(det['segmentation']).shape == (record['height'], record['width'])


def test_large_image_path_agrees_with_full_resolution_path(pasted_mask_model, shapes_image,
                                                          monkeypatch):
    """With in-graph pasted masks, images over FULL_RES_MASK_PIXELS run in resized coordinates;
    boxes and masks mapped back must agree with the exact path on the same image."""
    model = load_model_files(pasted_mask_model[2])
    detector = infer.Detector(model, PredictorOptions())
    image = read_image_rgb(shapes_image)
    exact = detector.predict([image], 0.0)[0]
    monkeypatch.setattr(infer, 'FULL_RES_MASK_PIXELS', 0)
    resized = detector.predict([image], 0.0)[0]
    assert resized['masks'].shape == exact['masks'].shape == (DETECTIONS, 128, 128)
    scale = 160 / 128  # resized pixels per original pixel
    np.testing.assert_allclose(resized['boxes'], exact['boxes'], atol=1.0 / scale + 0.01)
    np.testing.assert_array_equal(resized['class_ids'], exact['class_ids'])
    both = (resized['masks'] & exact['masks']).sum()
    either = (resized['masks'] | exact['masks']).sum()
    # Random-weight masks are small and ragged, so resampling alone costs IoU; a misplaced or
    # mis-scaled mask would score near 0 (pixel-centre misalignment measured 0.55).
    assert either > 0 and both / either > 0.6


def test_masks_in_resized_coordinates_map_back_exactly():
    """A square mask and its box, given in resized pixels (scale 2), land on the original's."""
    from deploy.python.results import split_per_image
    mask = np.zeros((1, 40, 60), np.int32)
    mask[0, 10:30, 20:40] = 1
    outputs = {'boxes': np.array([[1, 0.9, 20, 10, 40, 30]], np.float32),
               'boxes_num': np.array([1], np.int32), 'masks': mask}
    (dets,) = split_per_image(outputs, [{'origin_shape': (20, 30)}], 0.5, [(2.0, 2.0)])
    np.testing.assert_allclose(dets['boxes'], [[10, 5, 20, 15]])
    expected = np.zeros((20, 30), np.uint8)
    expected[5:15, 10:20] = 1
    np.testing.assert_array_equal(dets['masks'][0], expected)


@pytest.mark.parametrize('fixture', ['deploy_model', 'pasted_mask_model'])
def test_very_large_image(fixture, request, tmp_path):
    path = write_image(tmp_path / 'huge.jpg', cv2.resize(random_rgb(100, 150), (3000, 2000)))
    model = load_model_files(request.getfixturevalue(fixture)[2])
    detector = infer.Detector(model, PredictorOptions())
    (dets,) = detector.predict([read_image_rgb(path)], 0.0)
    assert dets['masks'].shape == (DETECTIONS, 2000, 3000)
    assert dets['masks'].any()
    assert (dets['boxes'] >= 0).all() and (dets['boxes'][:, [0, 2]] <= 3000).all() \
        and (dets['boxes'][:, [1, 3]] <= 2000).all()


def test_raw_mask_paste_fills_exactly_its_box():
    """Probability 1 over the whole 28x28 mask -> the box's pixels, nothing else."""
    from deploy.python.results import paste_masks
    masks = paste_masks(np.ones((1, 28, 28), np.float32), np.array([[10, 5, 30, 15.0]]), 20, 40)
    expected = np.zeros((20, 40), np.uint8)
    expected[5:15, 10:30] = 1
    np.testing.assert_array_equal(masks[0], expected)


def test_benchmark_report(deploy_model, shapes_image, tmp_path, capsys):
    out = tmp_path / 'bench'
    rc = run_cli('--model_dir', deploy_model[2], '--image_file', shapes_image, '--output_dir', out,
                 '--run_benchmark', '--warmup', 1, '--repeats', 3, '--enable_mkldnn=True')
    assert rc == 0
    report = json.loads((out / 'benchmark.json').read_text())
    for stage in ('preprocess', 'inference', 'postprocess'):
        assert report[stage]['runs'] == 3  # warm-up excluded
        assert 0 < report[stage]['median_ms'] <= report[stage]['p90_ms']
    assert report['fps'] == pytest.approx(1000.0 / report['total_median_ms'], rel=1e-2)
    assert report['enable_mkldnn'] is True
    assert '| inference |' in capsys.readouterr().out


def test_script_exit_codes_and_one_line_errors(deploy_model, tmp_path):
    script = os.path.join(os.path.dirname(__file__), '..', 'deploy', 'python', 'infer.py')
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'garbage')
    cases = [(['--model_dir', str(tmp_path / 'missing'), '--image_file', str(broken)], 2,
              "error: --model_dir '" + str(tmp_path / 'missing') + "': no such directory"),
             (['--model_dir', deploy_model[2], '--image_file', str(broken),
               '--output_dir', str(tmp_path / 'out')], 1, 'not a decodable image')]
    for args, code, message in cases:
        proc = subprocess.run([sys.executable, script] + args, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == code, proc.stderr
        assert message in proc.stderr
        assert 'Traceback' not in proc.stderr
