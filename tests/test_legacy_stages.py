"""The legacy pipeline stage by stage against the legacy static code itself.

Fixtures: tests/fixtures/legacy/, made by scripts/legacy_oracle/make_fixtures.py with
PaddleDetection release/2.4 `static/` on Paddle 1.8.5, both seed rows (add, mul), two input
sizes, seeded weights that the tests regenerate (scripts/legacy_oracle/seeded_weights.py) and
convert with the project's converter. Goals: proposals equal (coordinates within 1e-3 px), all
100 legacy detections reproduced (IoU >= 0.99, score within 1e-4, same class), masks with
mean IoU >= 0.99.
"""
import numpy as np
import paddle
import pytest

from legacy_oracle import (MODEL_SIZES, ROWS, box_iou_plus1, build_model, fixture,
                           legacy_reader_sample, match_detections, match_rows, run_stages,
                           unpack_masks)

CASES = [(row, size) for row in ROWS for size in MODEL_SIZES]
_cache = {}


def stages(row, size):
    """(model, fixture, our stage outputs), one forward pass per case; one model kept."""
    if (row, size) not in _cache:
        model = next((v[0] for k, v in _cache.items() if k[0] == row), None)
        _cache.clear()
        model = model or build_model(row)
        _cache[(row, size)] = (model, fixture(f'{row}_{size}'),
                               run_stages(model, legacy_reader_sample(size)))
    return _cache[(row, size)]


def anchor_generator():
    from ppdet_gcnet.legacy.anchors import LegacyAnchorGenerator
    return LegacyAnchorGenerator(anchor_sizes=[[32], [64], [128], [256], [512]],
                                 aspect_ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])


@pytest.mark.parametrize('size', MODEL_SIZES)
def test_anchors_equal_legacy(size):
    ref = fixture(f'add_{size}')
    levels = [lvl for lvl in range(2, 7) if f'anchors_{lvl}' in ref]
    shapes = {'s160': (160, 224), 's320': (320, 448)}[size]
    feats = [paddle.zeros([1, 1, -(-shapes[0] // 2 ** l), -(-shapes[1] // 2 ** l)])
             for l in range(2, 7)]
    ours = anchor_generator()(feats)
    for lvl in levels:
        np.testing.assert_array_equal(ours[lvl - 2].numpy(), ref[f'anchors_{lvl}'].reshape(-1, 4))


@pytest.mark.parametrize('row', ROWS)
def test_proposals_per_level_from_legacy_rpn_outputs(row):
    """LegacyProposalGenerator on the legacy RPN scores/deltas gives the legacy proposals."""
    from ppdet_gcnet.legacy.proposals import LegacyProposalGenerator
    ref = fixture(f'{row}_s160')
    gen = LegacyProposalGenerator(pre_nms_top_n=1000, post_nms_top_n=1000, nms_thresh=0.7,
                                  min_size=0.)
    anchors = anchor_generator()([paddle.zeros(ref[f'rpn_prob_{l}'].shape) for l in range(2, 7)])
    padded = paddle.to_tensor(ref['im_info'][None, :2])
    for lvl in range(2, 7):
        prob = ref[f'rpn_prob_{lvl}'].astype(np.float64)
        logit = paddle.to_tensor((np.log(prob) - np.log1p(-prob)).astype(np.float32))
        rois, probs, _, _ = gen(logit, paddle.to_tensor(ref[f'rpn_delta_{lvl}']),
                                anchors[lvl - 2], padded)
        assert rois.shape[0] == len(ref[f'level_rois_{lvl}'])
        assert np.abs(rois.numpy() - ref[f'level_rois_{lvl}']).max() <= 1e-3
        assert np.abs(probs.numpy() - ref[f'level_probs_{lvl}']).max() <= 1e-5


@pytest.mark.parametrize('row,size', CASES)
def test_proposals_same_set(row, size):
    _, ref, ours = stages(row, size)
    assert ours['rois'].shape == ref['rois'].shape
    where = match_rows(ref['rois'], ours['rois'], tol=1e-3)
    assert (where >= 0).all() and len(set(where.tolist())) == len(where)


@pytest.mark.parametrize('row,size', CASES)
def test_roi_level_assignment(row, size):
    """The extractor's FPN level for each legacy RoI, read through the component itself:
    level l's feature map is the constant l, so a RoI's pooled value is its level."""
    model, ref, ours = stages(row, size)
    feats = [paddle.full_like(f, float(level)) for level, f in zip(range(2, 7), ours['feats'])]
    rois = paddle.to_tensor(ref['rois'])
    with paddle.no_grad():
        pooled = model.bbox_head.roi_extractor(feats[:4], [rois],
                                               paddle.to_tensor([len(ref['rois'])], 'int32'))
    levels = np.rint(pooled.numpy().reshape(len(ref['rois']), -1).max(axis=1))
    np.testing.assert_array_equal(levels, ref['level_of_roi'])
    assert set(ref['level_of_roi'].tolist()) >= {2, 3}


@pytest.mark.parametrize('row,size', CASES)
def test_roi_features_and_box_head(row, size):
    """On the legacy RoIs: pooled features, class probabilities, decoded and clipped boxes."""
    model, ref, ours = stages(row, size)
    inputs, feats = ours['inputs'], ours['feats']
    rois = [paddle.to_tensor(ref['rois'])]
    rois_num = paddle.to_tensor([len(ref['rois'])], 'int32')
    with paddle.no_grad():
        pooled = model.bbox_head.roi_extractor(feats, rois, rois_num).numpy()
        preds, _ = model.bbox_head(feats, rois, rois_num, None)
        (boxes, _), _ = model.bbox_post_process.decode(preds, (rois, rois_num),
                                                       inputs['im_shape'],
                                                       inputs['scale_factor'])
    sample = pooled[ref['feat_rois']][:, ref['feat_channels']]
    scale = np.abs(ref['roi_feat']).max()
    assert np.abs(sample - ref['roi_feat']).max() <= 1e-4 * scale
    prob = preds[1].numpy()[ref['box_rois']]
    legacy_prob = np.concatenate([ref['cls_prob'][:, 1:], ref['cls_prob'][:, :1]], axis=1)
    assert np.abs(prob - legacy_prob).max() <= 1e-5
    clipped = boxes.numpy()[ref['box_rois']]
    assert np.abs(clipped - ref['clipped'][:, 1:]).max() <= 1e-3
    inside = (ref['decoded'] == ref['clipped'])[:, 1:]
    assert inside.mean() > 0.5          # most decoded boxes are not clipped
    assert np.abs(clipped - ref['decoded'][:, 1:])[inside].max() <= 1e-3


@pytest.mark.parametrize('row,size', CASES)
def test_top100_detections_reproduced(row, size):
    _, ref, ours = stages(row, size)
    assert len(ref['bbox']) == 100 and len(ours['bbox']) == 100
    where = match_detections(ref['bbox'], ours['bbox'])
    assert (where >= 0).all(), f"{(where < 0).sum()} legacy detections not reproduced"
    assert len(set(where.tolist())) == 100
    assert np.abs(ours['bbox'][where, 2:] - ref['bbox'][:, 2:]).max() <= 1e-3


@pytest.mark.parametrize('row,size', CASES)
def test_masks_reproduced(row, size):
    _, ref, ours = stages(row, size)
    where = match_detections(ref['bbox'], ours['bbox'])
    assert (where >= 0).all()
    prob = ours['mask_prob'][where]
    assert np.abs(prob - ref['mask_prob'].astype(np.float32)).max() <= 2e-3   # float16 fixture
    legacy_masks = unpack_masks(ref).astype(bool)
    our_masks = ours['pasted'][where].astype(bool)
    inter = (legacy_masks & our_masks).sum(axis=(1, 2))
    union = (legacy_masks | our_masks).sum(axis=(1, 2))
    ious = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    assert ious.mean() >= 0.99 and ious.min() >= 0.9
