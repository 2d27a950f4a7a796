"""End to end through ppdet's Trainer with the compat fixes: a tiny GC Mask R-CNN trains a few
iterations, evaluates with COCO bbox + segm metrics, resumes, and draws its predictions."""
import glob
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import ppdet_gcnet  # noqa: F401  (registers GCResNet, applies the fixes)
from ppdet.engine import Trainer  # noqa: E402  (after ppdet_gcnet)
from tiny_config import CONTROL_CONFIG, checkpoint_dir, write_tiny_config  # noqa: E402

pytestmark = pytest.mark.ppdet  # runs PaddleDetection itself: in both test legs


def tiny_config(repo_root, dataset_root, save_dir, **kwargs):
    from ppdet.core.workspace import load_config
    cfg = load_config(write_tiny_config(repo_root, dataset_root, save_dir, **kwargs))
    cfg.save_dir = str(save_dir)
    return cfg


def fresh_names():
    """Parameter and optimizer-state names restart from 0 inside, as in a fresh process: a resume
    matches the saved optimizer state to the optimizer's accumulators by these names."""
    from paddle.utils import unique_name
    return unique_name.guard()


def eval_recorder(trainer):
    """A Trainer callback keeping the metrics' results before the Trainer resets them."""
    from ppdet.engine.callbacks import Callback

    class EvalRecorder(Callback):
        results = None

        def on_epoch_end(self, status):
            if status.get('mode') == 'eval':
                self.results = trainer._metrics[0].get_results()

    return EvalRecorder(trainer)


@pytest.fixture(scope='module')
def trained(repo_root, shapes_dataset, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp('train')
    cfg = tiny_config(repo_root, shapes_dataset, save_dir)
    with fresh_names():
        trainer = Trainer(cfg, mode='train')
        recorder = eval_recorder(trainer)
        trainer.register_callbacks([recorder])
        trainer.train(validate=True)
    return cfg, trainer, recorder.results, Path(checkpoint_dir(save_dir, 'tiny_gc'))


def test_train_then_eval_gives_finite_losses_and_bbox_segm_metrics(trained):
    _, trainer, results, out_dir = trained
    assert type(trainer.model.backbone).__name__ == 'GCResNet'
    losses = trainer.status['training_staus'].get()
    assert {'loss_rpn_cls', 'loss_bbox_cls', 'loss_mask'} <= set(losses)
    assert all(math.isfinite(float(v)) for v in losses.values())
    assert set(results) == {'bbox', 'mask'}  # COCO bbox and segm evaluations
    assert all(len(stats) == 12 for stats in results.values())
    assert (out_dir / 'model_final.pdparams').is_file()


def test_resume_continues_from_the_saved_epoch(trained, repo_root, shapes_dataset):
    cfg, _, _, out_dir = trained
    cfg.epoch = 2
    with fresh_names():
        trainer = Trainer(cfg, mode='train')
        trainer.resume_weights(str(out_dir / 'model_final'))
        assert trainer.start_epoch == 1
        trainer.train(validate=False)
    assert trainer.status['epoch_id'] == 1


def test_predict_draws_and_saves_results(trained, shapes_dataset, tmp_path):
    cfg, _, _, out_dir = trained
    trainer = Trainer(cfg, mode='test')
    trainer.load_weights(str(out_dir / 'model_final'))
    images = sorted(glob.glob(os.path.join(shapes_dataset, 'val', '*.jpg')))
    trainer.predict(images, draw_threshold=0.0, output_dir=str(tmp_path), save_results=True)
    for image in images:  # each drawn over (boxes and labels), not copied
        drawn = cv2.imread(str(tmp_path / os.path.basename(image)))
        assert drawn is not None and drawn.shape == cv2.imread(image).shape
        assert np.abs(drawn.astype(int) - cv2.imread(image).astype(int)).max() > 50
    assert (tmp_path / 'bbox.json').is_file() and (tmp_path / 'mask.json').is_file()


def test_control_config_without_gc_trains_and_evaluates(repo_root, shapes_dataset, tmp_path):
    cfg = tiny_config(repo_root, shapes_dataset, tmp_path, name='tiny_control',
                      base=CONTROL_CONFIG, backbone='ResNet')
    assert cfg.MaskRCNN['backbone'] == 'ResNet'
    with fresh_names():
        trainer = Trainer(cfg, mode='train')
        recorder = eval_recorder(trainer)
        trainer.register_callbacks([recorder])
        trainer.train(validate=True)
    assert type(trainer.model.backbone).__name__ == 'ResNet'
    assert set(recorder.results) == {'bbox', 'mask'}
