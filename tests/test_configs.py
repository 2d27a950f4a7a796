"""The model-table configs reproduce the seed rows: same schedule, data layout, backbone, and
GC settings; the mul row differs from the add row only in fusion; the control has no GC."""
import json
import subprocess
import sys

import pytest

from tool_runner import ROOT

DESCRIBE = r'''
import json, sys
import ppdet_gcnet
from ppdet.core.workspace import load_config, create
cfg = load_config(sys.argv[1])
model = create(cfg.architecture)
backbone = model.backbone
lr = cfg['LearningRate']
print(json.dumps({
    'backbone': type(backbone).__name__,
    'depth': backbone.depth, 'variant': backbone.variant, 'freeze_at': backbone.freeze_at,
    'gc_blocks': [(b.in_channels, b.ratio, b.pooling_type, list(b.fusion_types))
                  for b in getattr(backbone, 'gc_blocks', [])],
    'params': int(sum(p.size for p in model.parameters())),
    'base_lr': lr['base_lr'], 'epoch': cfg.epoch,
    'milestones': lr['schedulers'][0].milestones,
    'warmup': [lr['schedulers'][1].steps, lr['schedulers'][1].start_factor],
    'optimizer': dict(cfg['OptimizerBuilder']['optimizer']),
    'regularizer': dict(cfg['OptimizerBuilder']['regularizer']),
    'batch_size': cfg['TrainReader']['batch_size'],
    'pretrain_weights': cfg.pretrain_weights,
    'train_anno': cfg['TrainDataset'].anno_path, 'dataset_dir': cfg['TrainDataset'].dataset_dir,
    'num_classes': cfg.num_classes,
}))
'''


def describe(config):
    out = subprocess.run([sys.executable, '-c', DESCRIBE, f'configs/gcnet/{config}.yml'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={'PYTHONPATH': ROOT, 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def rows():
    return {name: describe(name) for name in (
        'mask_rcnn_r50_vd_fpn_2x_coco', 'mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco',
        'mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco')}


def test_seed_schedule_and_data(rows):
    for row in rows.values():
        assert row['base_lr'] == 0.02 and row['epoch'] == 24
        assert row['milestones'] == [16, 22] and row['warmup'] == [1000, 0.1]
        assert row['optimizer'] == {'momentum': 0.9, 'type': 'Momentum'}
        assert row['regularizer'] == {'factor': 0.0001, 'type': 'L2'}
        assert row['batch_size'] == 2 and row['num_classes'] == 80
        assert row['pretrain_weights'].endswith('/ResNet50_vd_pretrained.pdparams')
        assert row['dataset_dir'] == 'dataset/coco'
        assert row['train_anno'] == 'annotations/instances_train2017.json'
        assert (row['depth'], row['variant'], row['freeze_at']) == (50, 'd', 0)


def test_gc_rows_put_r16_blocks_on_c3_to_c5(rows):
    control = rows['mask_rcnn_r50_vd_fpn_2x_coco']
    add = rows['mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco']
    mul = rows['mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco']
    assert control['backbone'] == 'ResNet' and control['gc_blocks'] == []
    expected_channels = [512] * 4 + [1024] * 6 + [2048] * 3
    assert [b[0] for b in add['gc_blocks']] == expected_channels
    assert all(b[1:] == [0.0625, 'att', ['channel_add']] for b in add['gc_blocks'])
    assert all(b[1:] == [0.0625, 'att', ['channel_mul']] for b in mul['gc_blocks'])
    # everything but the fusion type is shared; both add ~2.5M parameters to the control
    assert {k: v for k, v in add.items() if k != 'gc_blocks'} == \
        {k: v for k, v in mul.items() if k != 'gc_blocks'}
    assert 2.4e6 < add['params'] - control['params'] < 2.6e6
