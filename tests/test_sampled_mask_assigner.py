"""SampledMaskAssigner: at most max_fg_per_im foreground RoIs per image get mask targets, and
those targets are PaddleDetection's MaskAssigner's for the same RoIs."""
import numpy as np
import paddle
import pytest

import ppdet_gcnet  # noqa: F401  (applies compat)
from ppdet.modeling.proposal_generator.target_layer import MaskAssigner
from ppdet_gcnet.modeling import SampledMaskAssigner

pytestmark = pytest.mark.ppdet  # runs PaddleDetection itself: in both test legs

NUM_CLASSES = 3
RESOLUTION = 8


def _image(num_fg, num_bg, seed):
    """One image's sampled RoIs: `num_fg` around two objects (classes 0 and 2), `num_bg`
    background; their labels, gt indices and the objects' polygons."""
    rng = np.random.RandomState(seed)
    polygons = [[[10., 10., 40., 10., 40., 40., 10., 40.]], [[60., 60., 100., 75., 60., 90.]]]
    boxes = np.array([[10., 10., 40., 40.], [60., 60., 100., 90.]])
    gt = rng.randint(0, 2, num_fg)
    fg = boxes[gt] + rng.uniform(-3, 3, (num_fg, 4))
    bg = rng.uniform(0, 20, (num_bg, 4)) + [100, 100, 120, 120]
    labels = np.concatenate([np.array([0, 2])[gt], np.full(num_bg, NUM_CLASSES)]).astype('int32')
    gt_inds = np.concatenate([gt, np.zeros(num_bg, int)]).astype('int64')
    return (paddle.to_tensor(np.concatenate([fg, bg]).astype('float32')),
            paddle.to_tensor(labels), paddle.to_tensor(gt_inds), polygons)


def _assign(assigner, images):
    rois, labels, gt_inds, polygons = zip(*images)
    out = assigner(list(rois), list(labels), list(gt_inds), {'gt_poly': list(polygons)})
    mask_rois, counts, classes, masks, _, weights = out
    return ([r.numpy() for r in mask_rois], counts.numpy().tolist(), classes.numpy(),
            masks.numpy(), weights.numpy())


def test_caps_foreground_and_keeps_mask_assigners_targets():
    images = [_image(num_fg=20, num_bg=10, seed=0), _image(num_fg=5, num_bg=10, seed=1)]
    paddle.seed(3)
    rois, counts, classes, masks, weights = _assign(
        SampledMaskAssigner(num_classes=NUM_CLASSES, mask_resolution=RESOLUTION,
                            max_fg_per_im=8), images)
    all_rois, all_counts, all_classes, all_masks, _ = _assign(
        MaskAssigner(num_classes=NUM_CLASSES, mask_resolution=RESOLUTION), images)
    assert all_counts == [20, 5] and counts == [8, 5]
    assert weights.tolist() == [1.0] * 13
    # every kept RoI is one of MaskAssigner's, with its class and target mask
    everything = np.concatenate(all_rois)
    for k, roi in enumerate(np.concatenate(rois)):
        match = np.flatnonzero((everything == roi).all(axis=1))
        assert len(match) == 1
        assert classes[k] == all_classes[match[0]]
        np.testing.assert_array_equal(masks[k], all_masks[match[0]])
    # the image under the cap keeps all its foreground, in order
    np.testing.assert_array_equal(rois[1], all_rois[1])
    # which 8 are kept comes from Paddle's seeded generator
    paddle.seed(3)
    again = _assign(SampledMaskAssigner(num_classes=NUM_CLASSES, mask_resolution=RESOLUTION,
                                        max_fg_per_im=8), images)[0]
    np.testing.assert_array_equal(again[0], rois[0])
    paddle.seed(4)
    other = _assign(SampledMaskAssigner(num_classes=NUM_CLASSES, mask_resolution=RESOLUTION,
                                        max_fg_per_im=8), images)[0]
    assert not np.array_equal(other[0], rois[0])


def test_rejects_a_cap_below_one():
    with pytest.raises(ValueError, match="max_fg_per_im=0"):
        SampledMaskAssigner(max_fg_per_im=0)
