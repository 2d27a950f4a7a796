"""End to end through ppdet's Trainer with the compat fixes: a tiny GC Mask R-CNN trains a few
iterations, evaluates with COCO bbox + segm metrics, resumes, and draws its predictions."""
import glob
import math
import os

import pytest

import ppdet_gcnet  # noqa: F401  (registers GCResNet, applies the fixes)

GC_CONFIG = 'configs/gcnet/shapes/mask_rcnn_r50_vd_fpn_gcb_add_r16_shapes.yml'


def tiny_config(repo_root, dataset_root, save_dir, backbone='GCResNet'):
    """The shapes quickstart config shrunk for a test: depth 18, 128x128 images, one epoch."""
    from ppdet.core.workspace import load_config
    cfg = load_config(os.path.join(repo_root, GC_CONFIG))
    for name in ('TrainDataset', 'EvalDataset', 'TestDataset'):
        cfg[name].dataset_dir = dataset_root
    cfg.MaskRCNN['backbone'] = backbone
    cfg[backbone]['depth'] = 18
    cfg.TrainReader['sample_transforms'][1] = {'RandomResize': {
        'target_size': [[128, 128]], 'interp': 2, 'keep_ratio': True}}
    for reader in ('EvalReader', 'TestReader'):
        cfg[reader]['sample_transforms'][1] = {'Resize': {
            'target_size': [128, 128], 'interp': 2, 'keep_ratio': True}}
    cfg.RPNHead['train_proposal']['post_nms_top_n'] = 64
    cfg.RPNHead['test_proposal']['post_nms_top_n'] = 64
    cfg.BBoxAssigner['batch_size_per_im'] = 32
    cfg.epoch, cfg.snapshot_epoch, cfg.log_iter = 1, 1, 1
    cfg.save_dir = str(save_dir)
    return cfg


from ppdet.engine import Trainer  # noqa: E402  (after ppdet_gcnet)


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
    return cfg, trainer, recorder.results, save_dir / os.path.splitext(
        os.path.basename(GC_CONFIG))[0]


def test_train_then_eval_gives_finite_losses_and_bbox_segm_metrics(trained):
    _, trainer, results, out_dir = trained
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
    for image in images:
        assert (tmp_path / os.path.basename(image)).is_file()
    assert (tmp_path / 'bbox.json').is_file() and (tmp_path / 'mask.json').is_file()
