"""RoI sampling for the box head: per-image RoI counts concatenated as 0-D tensors.

Defect: `ppdet.modeling.proposal_generator.target.generate_proposal_target` (PaddleDetection
2.6), which `BBoxAssigner` calls for every R-CNN training step, ends with
`paddle.concat([paddle.shape(sampled_inds)[0], ...])`. Since Paddle 2.5 those are 0-D tensors
and the concat raises, so Faster/Mask R-CNN training stops at the box head's targets.

Restores: PaddleDetection PRs #8112 and #8423 (develop, 2023; cherry-picked to release/2.6 as
#8653, after the 2.6.0 wheel was built) keep each count 1-D (`[0:1]`): the function returns
`rois_num` of shape [batch_size] (int32), one sampled-RoI count per image.

Fix: `generate_proposal_target` below, written on ppdet's own `label_box` and `sample_bbox`
(which are correct), replaces the function in `target` and in `target_layer` (which imported it
by name).
"""
import numpy as np

from ._patching import leading_count, replace

NAME = 'proposal_targets'


def _modules():
    from ppdet.modeling.proposal_generator import target, target_layer
    return target, target_layer


def generate_proposal_target(rpn_rois, gt_classes, gt_boxes, batch_size_per_im, fg_fraction,
                             fg_thresh, bg_thresh, num_classes, ignore_thresh=-1., is_crowd=None,
                             use_random=True, is_cascade=False, cascade_iou=0.5,
                             assign_on_cpu=False, add_gt_as_proposals=True):
    """Label and sample RoIs per image; returns (rois, labels, gt boxes, gt indices, counts)."""
    import paddle
    target, _ = _modules()
    if is_cascade:  # cascade stages use one IoU for both foreground and background
        fg_thresh = bg_thresh = cascade_iou
    rois_out, labels_out, boxes_out, gt_inds_out, counts = [], [], [], [], []
    for i, rois in enumerate(rpn_rois):
        gt_box = gt_boxes[i]
        has_gt = gt_box.shape[0] > 0
        candidates = paddle.concat([rois, gt_box]) if add_gt_as_proposals and has_gt else rois
        matches, match_labels = target.label_box(
            candidates, gt_box, fg_thresh, bg_thresh, False, ignore_thresh,
            is_crowd[i] if is_crowd else None, assign_on_cpu)
        sampled, sampled_labels = target.sample_bbox(
            matches, match_labels, paddle.squeeze(gt_classes[i], axis=-1), batch_size_per_im,
            fg_fraction, num_classes, use_random, is_cascade)
        sampled_rois = candidates if is_cascade else paddle.gather(candidates, sampled)
        sampled_gt = matches if is_cascade else paddle.gather(matches, sampled)
        if has_gt:
            sampled_boxes = paddle.gather(gt_box, sampled_gt)
        else:
            sampled_boxes = paddle.zeros([sampled_rois.shape[0], 4], dtype='float32')
        for t in (sampled_rois, sampled_gt, sampled_boxes):
            t.stop_gradient = True
        rois_out.append(sampled_rois)
        labels_out.append(sampled_labels)
        boxes_out.append(sampled_boxes)
        gt_inds_out.append(sampled_gt)
        counts.append(leading_count(sampled))
    return rois_out, labels_out, boxes_out, gt_inds_out, paddle.concat(counts)


def _tiny_case():
    """Two images: 3 proposals and 1 gt box each; deterministic sampling (no randomness)."""
    import paddle
    rois = [paddle.to_tensor(np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 9, 10]],
                                      'float32')) for _ in range(2)]
    gt_boxes = [paddle.to_tensor(np.array([[0, 0, 10, 10]], 'float32')) for _ in range(2)]
    gt_classes = [paddle.to_tensor(np.array([[1]], 'int32')) for _ in range(2)]
    return dict(rpn_rois=rois, gt_classes=gt_classes, gt_boxes=gt_boxes, batch_size_per_im=8,
                fg_fraction=0.5, fg_thresh=0.5, bg_thresh=0.5, num_classes=3, use_random=False)


def probe():
    """Run the function `BBoxAssigner` calls on the tiny case; True if it fails or returns
    something other than one count per image that matches the RoIs returned."""
    _, target_layer = _modules()
    try:
        rois, _, _, _, rois_num = target_layer.generate_proposal_target(**_tiny_case())
    except (ValueError, RuntimeError):
        return True
    counts = rois_num.numpy()
    return counts.shape != (2, ) or [int(r.shape[0]) for r in rois] != counts.tolist()


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    return [(module, 'generate_proposal_target') for module in _modules()]


def apply():
    target, target_layer = _modules()
    changed = replace(target, 'generate_proposal_target', generate_proposal_target, NAME)
    return replace(target_layer, 'generate_proposal_target', generate_proposal_target,
                   NAME) or changed
