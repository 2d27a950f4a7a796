"""train -> eval -> infer through the tools, as a user runs them, on a tiny generated dataset."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tiny_config import checkpoint_dir
from tool_runner import run_tool, tiny_config

pytestmark = pytest.mark.ppdet  # runs PaddleDetection itself: in both test legs


@pytest.fixture(scope='module')
def trained(tmp_path_factory, shapes_dataset):
    work = tmp_path_factory.mktemp('e2e')
    config = tiny_config(str(work), shapes_dataset)
    result = run_tool('tools/train.py', '-c', config, '--seed', '0')
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(checkpoint_dir(work / 'output', config))
    return config, run_dir, result


def test_train_writes_checkpoints_and_logs_losses(trained):
    config, run_dir, result = trained
    assert (run_dir / 'model_final.pdparams').is_file()
    assert (run_dir / 'model_final.pdopt').is_file()
    assert 'loss_mask' in result.stderr + result.stdout
    import paddle
    state = paddle.load(str(run_dir / 'model_final.pdparams'))
    gc_keys = [k for k in state if '.gc_block.' in k]
    assert len(gc_keys) == 6 * 8  # 6 GC blocks (R18, c3-c5), 8 tensors each (att + add)


def test_eval_reports_coco_bbox_and_segm_ap(trained, tmp_path):
    config, run_dir, _ = trained
    result = run_tool('tools/eval.py', '-c', config, '-o', f'weights={run_dir}/model_final',
                      '--output_eval', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count('Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all') == 2  # bbox, segm
    for name in ('bbox.json', 'mask.json'):
        with open(tmp_path / name) as f:
            assert isinstance(json.load(f), list)


def test_infer_draws_the_image_at_its_size(trained, tmp_path, shapes_dataset):
    config, run_dir, _ = trained
    image = os.path.join(shapes_dataset, 'val', 'val_00000.jpg')
    result = run_tool('tools/infer.py', '-c', config, '-o', f'weights={run_dir}/model_final',
                      '--infer_img', image, '--output_dir', str(tmp_path), '--draw_threshold',
                      '0.0', '--save_results')
    assert result.returncode == 0, result.stderr[-3000:]
    drawn = cv2.imread(str(tmp_path / 'val_00000.jpg'))
    original = cv2.imread(image)
    assert drawn is not None and drawn.shape == original.shape
    with open(tmp_path / 'bbox.json') as f:
        detections = json.load(f)
    assert detections and all(len(d['bbox']) == 4 for d in detections)
    # threshold 0 draws every detection, so the picture differs from the input
    assert np.abs(drawn.astype(int) - original.astype(int)).max() > 0


def test_resume_continues_from_the_checkpoint_epoch(trained):
    config, run_dir, _ = trained
    before = os.path.getmtime(run_dir / 'model_final.pdparams')
    # the one-epoch run saved its last epoch as model_final; resume it for a second epoch
    result = run_tool('tools/train.py', '-c', config, '-o', 'epoch=2', '-r',
                      f'{run_dir}/model_final')
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'Epoch: [1]' in log and 'Epoch: [0]' not in log
    assert os.path.getmtime(run_dir / 'model_final.pdparams') > before
