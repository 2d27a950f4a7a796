"""Cascade R-CNN stage RoIs: per-image RoI counts concatenated as 0-D tensors.

Defect: `ppdet.modeling.heads.cascade_head.CascadeHead._get_rois_from_boxes` (PaddleDetection 2.6)
counts each image's refined boxes as `paddle.shape(r)[0]` and concatenates the list. Since Paddle
2.5 that index gives a 0-D tensor and `paddle.concat` raises "The axis is expected to be in range
of [0, 0)", so every Cascade R-CNN forward pass fails after its first stage.

Restores: the 1-D per-image counts Paddle 2.4 gave (PaddleDetection >= 2.7 counts with a slice,
as `rpn_proposals` does for the RPN).

Fix: `_get_rois_from_boxes` is replaced by `rois_from_boxes` below: boxes clipped to the image,
empty boxes dropped while training (one box kept so every image has a RoI), 1-D int32 counts.
"""
import types

from ._patching import leading_count, replace

NAME = 'cascade_rois'


def _cascade_head_class():
    from ppdet.modeling.heads.cascade_head import CascadeHead
    return CascadeHead


def rois_from_boxes(self, boxes, im_shape):
    """Refined boxes of one stage -> (list of per-image RoIs, counts [batch_size])."""
    import paddle
    from ppdet.modeling.bbox_utils import clip_bbox, nonempty_bbox
    per_image = []
    for index, image_boxes in enumerate(boxes):
        clipped = clip_bbox(image_boxes, im_shape[index])
        if self.training:
            keep = nonempty_bbox(clipped)
            if keep.shape[0] == 0:        # keep one box so the image still has a RoI
                keep = paddle.zeros([1], dtype='int32')
            clipped = paddle.gather(clipped, keep)
        per_image.append(clipped)
    return per_image, paddle.concat([leading_count(r) for r in per_image])


def probe():
    """Run the installed method on two images' boxes; True if it fails or the counts are not
    one per image."""
    import paddle
    head = types.SimpleNamespace(training=False)
    boxes = [paddle.to_tensor([[0., 0., 4., 4.], [1., 1., 3., 3.]]),
             paddle.to_tensor([[2., 2., 6., 6.]])]
    im_shape = paddle.to_tensor([[8., 8.], [8., 8.]])
    try:
        _, counts = _cascade_head_class()._get_rois_from_boxes(head, boxes, im_shape)
    except (ValueError, RuntimeError):
        return True
    return counts.numpy().tolist() != [2, 1]


def replaced_attributes():
    return [(_cascade_head_class(), '_get_rois_from_boxes')]


def apply():
    return replace(_cascade_head_class(), '_get_rois_from_boxes', rois_from_boxes, NAME)
