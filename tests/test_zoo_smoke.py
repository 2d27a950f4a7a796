"""Each architecture family of the zoo trains, evaluates, exports and deploys: the row's own
config on the generated shapes data, reduced for CPU (128-px images, narrow FPN and heads,
ResNet(-eXt)-50 for the 101-layer rows, BN trainable; everything else, DCN, GC ratio, cascade
stages, stays the row's). Paddle Inference on the export gives the dygraph model's detections.
Rows not listed differ from one listed only in depth or GC ratio (built at full size in
test_zoo_configs.py)."""
import os

import numpy as np
import paddle
import pytest

from ppdet_build import build_model
from test_export import model_inputs, run_inference
from tiny_config import TINY_SIZE
from tool_runner import ROOT, run_tool

FAMILIES = {
    # row: backbone depth in the smoke test
    'mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco': 50,
    'mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco': 50,
    'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_r16_gcb_c3-c5_1x_coco': 50,
    'faster_rcnn_r50_vd_fpn_gcb_add_r16_1x_coco': 18,
    'cascade_rcnn_r50_vd_fpn_gcb_add_r16_1x_coco': 18,
}
ONNX_ROWS = ('mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco',
             'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_r16_gcb_c3-c5_1x_coco')
_READER = ("  sample_transforms:\n  - Decode: {{}}\n  - {resize}\n"
           "  - NormalizeImage: {{is_scale: true, mean: [0.485, 0.456, 0.406], "
           "std: [0.229, 0.224, 0.225]}}\n  - Permute: {{}}\n")


def write_smoke_config(row, depth, dataset, work):
    resize = f"Resize: {{target_size: [{TINY_SIZE}, {TINY_SIZE}], interp: 1, keep_ratio: true}}"
    fixed = _READER.format(resize=resize)
    # the mmdetection rows' proposal generator (a tagged object: a plain mapping here would
    # replace it by ppdet's)
    generator = '' if row.endswith('_vd_fpn_gcb_add_r16_1x_coco') else '!MMDetProposalGenerator '
    text = f"""_BASE_: ['{ROOT}/configs/gcnet/{row}.yml', '{ROOT}/configs/gcnet/shapes/shapes_instance.yml']
use_gpu: false
worker_num: 0
epoch: 1
snapshot_epoch: 1
log_iter: 1
pretrain_weights: null
save_dir: {work}/output
output_eval: {work}/eval     # ppdet writes bbox.json / mask.json there, not in the checkout
# From scratch, BN frozen at its initial statistics lets activations grow through the 50 layers
# until RPN scores saturate at 1.0 and tie (then dygraph and Paddle Inference may rank ties
# differently); trainable BN keeps them in range.
GCResNet: {{depth: {depth}, freeze_at: -1, freeze_norm: false}}
FPN: {{out_channel: 32}}
RPNHead:
  train_proposal: {generator}{{pre_nms_top_n: 200, post_nms_top_n: 64, min_size: 0.0}}
  test_proposal: {generator}{{pre_nms_top_n: 200, post_nms_top_n: 64, min_size: 0.0}}
BBoxAssigner: {{batch_size_per_im: 32}}
TwoFCHead: {{out_channel: 64}}
CascadeTwoFCHead: {{out_channel: 64}}
MaskFeat: {{num_convs: 1, out_channel: 32}}
LearningRate:
  base_lr: 0.001
  schedulers:
  - !PiecewiseDecay {{gamma: 0.1, milestones: [8]}}
  - !LinearWarmup {{start_factor: 0.1, steps: 2}}
TrainReader:
{fixed.replace('Resize:', 'RandomResize:').replace('target_size: [', 'target_size: [[').replace('], interp', ']], interp')}  batch_size: 2
  use_shared_memory: false
EvalReader:
{fixed}TestReader:
{fixed}TrainDataset:
  !COCODataSet
    image_dir: train
    anno_path: annotations/instances_train.json
    dataset_dir: {dataset}
    data_fields: ['image', 'gt_bbox', 'gt_class', 'gt_poly', 'is_crowd']
EvalDataset:
  !COCODataSet
    image_dir: val
    anno_path: annotations/instances_val.json
    dataset_dir: {dataset}
TestDataset:
  !ImageFolder
    anno_path: annotations/instances_val.json
    dataset_dir: {dataset}
"""
    path = os.path.join(str(work), 'smoke.yml')
    with open(path, 'w') as handle:
        handle.write(text)
    return path


@pytest.mark.parametrize('row', list(FAMILIES))
def test_train_eval_export_deploy(row, shapes_dataset, tmp_path):
    config = write_smoke_config(row, FAMILIES[row], shapes_dataset, tmp_path)
    run = run_tool('tools/train.py', '-c', config, '--eval', '--seed', '0', timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert 'loss' in log and ('bbox' in log or 'Average Precision' in log)
    weights = str(tmp_path / 'output' / 'smoke' / 'model_final')
    assert os.path.isfile(weights + '.pdparams')
    masks = not row.startswith(('faster', 'cascade_rcnn'))
    export_dir = tmp_path / 'inference'
    # the mmdetection rows' switches also through paddle2onnx (their ONNX forms)
    onnx = ['--onnx'] if row in ONNX_ROWS else []
    run = run_tool('tools/export_model.py', '-c', config, '-o', f'weights={weights}',
                   '--output_dir', str(export_dir), *onnx, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    model_dir = str(export_dir / 'smoke')

    # dygraph detections of the trained weights on a val image, then the export's
    image = os.path.join(shapes_dataset, 'val', sorted(os.listdir(
        os.path.join(shapes_dataset, 'val')))[0])
    inputs = model_inputs(image)
    model, _ = build_model(config)
    model.set_state_dict(paddle.load(weights + '.pdparams'))
    with paddle.no_grad():
        eager = {k: v.numpy() for k, v in model(
            {k: paddle.to_tensor(v) for k, v in inputs.items()}).items()}
    outputs = run_inference(model_dir, inputs)
    boxes, counts = outputs[0], outputs[1]
    assert counts.tolist() == eager['bbox_num'].tolist()
    assert len(boxes) == len(eager['bbox']) > 0
    np.testing.assert_array_equal(boxes[:, 0], eager['bbox'][:, 0])
    np.testing.assert_allclose(boxes[:, 1:], eager['bbox'][:, 1:], rtol=1e-4, atol=1e-3)
    if masks:
        assert outputs[2].shape == eager['mask'].shape
        assert (outputs[2] != eager['mask']).mean() < 1e-3
    if onnx:
        from test_onnx_export import onnxruntime_outputs
        ort = onnxruntime_outputs(model_dir, inputs)
        assert ort[1].tolist() == counts.tolist()
        np.testing.assert_array_equal(ort[0][:, 0], boxes[:, 0])
        np.testing.assert_allclose(ort[0][:, 1:], boxes[:, 1:], rtol=1e-4, atol=1e-3)
        assert (ort[2] != outputs[2]).mean() < 1e-3
    with open(os.path.join(model_dir, 'infer_cfg.yml')) as handle:
        assert ('mask: true' in handle.read()) == masks
