"""Mask targets: per-image foreground RoI counts concatenated as 0-D tensors.

Defect: `ppdet.modeling.proposal_generator.target.generate_mask_target` (PaddleDetection 2.6),
which `MaskAssigner` calls for every Mask R-CNN training step, concatenates
`paddle.shape(fg_rois)[0]` per image. Since Paddle 2.5 those are 0-D tensors and the concat
raises, so Mask R-CNN training stops at the mask head's targets.

Restores: PaddleDetection PRs #8112 and #8423 (develop, 2023; cherry-picked to release/2.6 as
#8653, after the 2.6.0 wheel was built) keep each count 1-D (`[0:1]`): `mask_rois_num` has shape
[batch_size] (int32), one foreground-RoI count per image, as under Paddle 2.4.

Fix: `generate_mask_target` below, written on ppdet's own `rasterize_polygons_within_box`,
replaces the function in `target` and in `target_layer` (which imported it by name).
"""
import numpy as np

from ._patching import leading_count, replace

NAME = 'mask_targets'


def _modules():
    from ppdet.modeling.proposal_generator import target, target_layer
    return target, target_layer


def generate_mask_target(gt_segms, rois, labels_int32, sampled_gt_inds, num_classes,
                         resolution):
    """Rasterise each foreground RoI's gt polygons into a `resolution`^2 target.

    Returns (mask_rois, mask_rois_num [batch], classes, masks, fg indices, weights). An image
    without foreground contributes one placeholder RoI with weight 0, as ppdet does, so the
    mask loss always has an input.
    """
    import paddle
    target, _ = _modules()
    mask_rois, counts, classes, masks, fg_index, weights = [], [], [], [], [], []
    for k in range(len(rois)):
        labels = labels_int32[k]
        fg = paddle.nonzero(paddle.logical_and(labels != -1, labels != num_classes))
        has_fg = fg.numel() > 0
        if not has_fg:
            fg = paddle.ones([1, 1], dtype='int64')
        fg_rois = paddle.gather(rois[k], fg)
        gt_of_fg = paddle.gather(sampled_gt_inds[k], fg).numpy()
        segms = gt_segms[k]
        if len(segms) > 0:
            boxes = fg_rois.numpy()
            per_roi = [target.rasterize_polygons_within_box(segms[g], boxes[j], resolution)
                       for j, g in enumerate(gt_of_fg)]
        else:
            per_roi = [paddle.ones([resolution, resolution], dtype='int32')]
        fg_classes = paddle.gather(labels, fg)
        weight = paddle.ones([fg_rois.shape[0]], dtype='float32')
        if not has_fg:  # placeholder class with zero weight: contributes no loss
            fg_classes = paddle.zeros([1], dtype='int32')
            weight = weight - 1
        mask = paddle.stack(per_roi)
        mask.stop_gradient = True
        fg_rois.stop_gradient = True
        fg_index.append(fg)
        mask_rois.append(fg_rois)
        counts.append(leading_count(fg_rois))
        classes.append(fg_classes)
        masks.append(mask)
        weights.append(weight)
    return (mask_rois, paddle.concat(counts), paddle.concat(classes), paddle.concat(masks),
            paddle.concat(fg_index), paddle.concat(weights))


def _tiny_case():
    """Two images, two sampled RoIs each (one foreground on gt 0, one background)."""
    import paddle
    square = [[0, 0, 8, 0, 8, 8, 0, 8]]  # polygons arrive as lists, as from the data pipeline
    rois = [paddle.to_tensor(np.array([[0, 0, 8, 8], [20, 20, 30, 30]], 'float32'))
            for _ in range(2)]
    labels = [paddle.to_tensor(np.array([1, 3], 'int32')) for _ in range(2)]
    gt_inds = [paddle.to_tensor(np.array([0, 0], 'int64')) for _ in range(2)]
    return dict(gt_segms=[[square], [square]], rois=rois, labels_int32=labels,
                sampled_gt_inds=gt_inds, num_classes=3, resolution=4)


def probe():
    """Run the function `MaskAssigner` calls on the tiny case; True if it fails or returns
    something other than one count per image that matches the RoIs returned."""
    _, target_layer = _modules()
    try:
        mask_rois, mask_rois_num = target_layer.generate_mask_target(**_tiny_case())[:2]
    except (ValueError, RuntimeError):
        return True
    counts = mask_rois_num.numpy()
    return counts.shape != (2, ) or [int(r.shape[0]) for r in mask_rois] != counts.tolist()


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    return [(module, 'generate_mask_target') for module in _modules()]


def apply():
    target, target_layer = _modules()
    changed = replace(target, 'generate_mask_target', generate_mask_target, NAME)
    return replace(target_layer, 'generate_mask_target', generate_mask_target,
                   NAME) or changed
