"""Access to the legacy-oracle fixtures (tests/fixtures/legacy/, made by
scripts/legacy_oracle/make_fixtures.py under Paddle 1.8.5) and our side of the comparison: the
legacy-config model with the same seeded weights, converted, run stage by stage."""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures', 'legacy')
IMAGE = os.path.join(FIXTURES, 'image.png')
ROWS = ('add', 'mul')
MODEL_SIZES = ('s160', 's320')
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

sys.path.insert(0, os.path.join(ROOT, 'scripts', 'legacy_oracle'))
from seeded_weights import legacy_weight  # noqa: E402


def config_path(row):
    return os.path.join(ROOT, 'configs', 'gcnet', 'legacy',
                        f'mask_rcnn_r50_vd_fpn_gcb_{row}_r16_2x_coco.yml')


def meta():
    with open(os.path.join(FIXTURES, 'legacy_meta.json')) as handle:
        return json.load(handle)


def fixture(name):
    return dict(np.load(os.path.join(FIXTURES, name + '.npz')))


def legacy_arrays(row):
    """The seeded legacy weights of a row, by legacy name (as the oracle set them)."""
    return {name: legacy_weight(name, shape) for name, shape in meta()['weights'][row].items()}


def legacy_reader_sample(size_name, image=IMAGE):
    """Our legacy reader (the transforms the legacy configs list) on the fixture image."""
    from ppdet.data.transform.batch_operators import PadBatch
    from ppdet.data.transform.operators import Decode, Permute
    from ppdet_gcnet.legacy.reader import LegacyNormalizeImage, LegacyResize
    sample = {'im_file': image}
    for op in (Decode(), LegacyNormalizeImage(mean=MEAN, std=STD, is_scale=True),
               LegacyResize(target_size=meta()['sizes'][size_name], interp=1), Permute()):
        sample = op(sample)
    return PadBatch(pad_to_stride=32)([sample])[0]


def build_model(row):
    """The legacy-config model of `row` with the oracle's seeded weights, converted."""
    import paddle
    import ppdet_gcnet  # noqa: F401
    from ppdet.core.workspace import create, load_config
    from ppdet_gcnet.weights.convert import arch_from_config, convert_arrays, require_complete
    from ppdet_gcnet.weights.legacy_names import mask_rcnn_rules
    cfg = load_config(config_path(row))
    model = create(cfg.architecture)
    model.eval()
    targets = {k: (tuple(v.shape), np.dtype('float32')) for k, v in model.state_dict().items()}
    state, report = convert_arrays(legacy_arrays(row), targets,
                                   mask_rcnn_rules(arch_from_config(cfg)))
    require_complete(report, f'seeded legacy weights ({row})')
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    return model


def run_stages(model, sample):
    """Our pipeline on one reader sample, every stage kept (numpy)."""
    import paddle
    inputs = {'image': paddle.to_tensor(sample['image'][None]),
              'im_shape': paddle.to_tensor(sample['im_shape'][None]),
              'scale_factor': paddle.to_tensor(sample['scale_factor'][None])}
    with paddle.no_grad():
        feats = model.neck(model.backbone(inputs))
        rois, rois_num, _ = model.rpn_head(feats, inputs)
        preds, _ = model.bbox_head(feats, rois, rois_num, None)
        post = model.bbox_post_process
        bbox, bbox_num, _ = post(preds, (rois, rois_num), inputs['im_shape'],
                                 inputs['scale_factor'])
        mask_out = model.mask_head(feats, bbox, bbox_num, inputs)
        _, pred, pred_num = post.get_pred(bbox, bbox_num, inputs['im_shape'],
                                          inputs['scale_factor'])
        pasted = model.mask_post_process(mask_out, pred, pred_num, post.get_origin_shape())
    return {'inputs': inputs, 'feats': feats, 'rois': rois[0].numpy(), 'bbox': pred.numpy(),
            'mask_prob': mask_out.numpy(), 'pasted': pasted.numpy()}


def box_iou_plus1(a, b):
    """IoU matrix with the legacy +1 pixel widths."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1 + 1, 0, None) * np.clip(y2 - y1 + 1, 0, None)

    def area(z):
        return (z[:, 2] - z[:, 0] + 1) * (z[:, 3] - z[:, 1] + 1)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def match_detections(legacy, ours, iou_min=0.99, score_tol=1e-4):
    """For each legacy detection [label 1..80, score, box] the index of our detection
    [label 0..79, score, box] of the same class, score within `score_tol` and IoU >= iou_min
    (best IoU), or -1."""
    iou = box_iou_plus1(legacy[:, 2:], ours[:, 2:]) if len(ours) else np.zeros((len(legacy), 0))
    matches = []
    for i, det in enumerate(legacy):
        ok = ((ours[:, 0] == det[0] - 1) & (np.abs(ours[:, 1] - det[1]) <= score_tol)
              & (iou[i] >= iou_min)) if len(ours) else np.zeros(0, bool)
        matches.append(int(np.argmax(np.where(ok, iou[i], -1))) if ok.any() else -1)
    return np.array(matches)


def unpack_masks(fixture_data):
    width = int(fixture_data['pasted_width'])
    return np.unpackbits(fixture_data['pasted'], axis=-1)[:, :, :width]


def match_rows(reference, ours, tol=1e-3):
    """Index of the row of `ours` equal (within tol) to each row of `reference`, or -1."""
    out = []
    for row in reference:
        diff = np.abs(ours - row).max(axis=1)
        best = int(np.argmin(diff))
        out.append(best if diff[best] <= tol else -1)
    return np.array(out)
