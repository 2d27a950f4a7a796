"""RoI sampling that also offers the box head jittered copies of the ground-truth boxes.

Early in training from scratch, the RPN proposes almost nothing near the objects, so the box
head sees each object once per step (the ground-truth box, which ppdet's BBoxAssigner appends)
among dozens of background RoIs: classification and box regression then learn from a handful
of foreground samples per step. `JitteredGTBBoxAssigner` appends `num_jitter` randomly shifted
and rescaled copies of every ground-truth box to each image's proposals before PaddleDetection's
own BBoxAssigner labels and samples them, so from the first step the heads train on many
foreground views per object, at the offsets and scales proposals will later have.
"""
import paddle
from ppdet.core.workspace import register
from ppdet.modeling.proposal_generator.target_layer import BBoxAssigner

__all__ = ['JitteredGTBBoxAssigner', 'jitter_boxes']


def jitter_boxes(boxes, num_jitter, max_shift, max_scale):
    """`num_jitter` copies of each [N, 4] (x0, y0, x1, y1) box, the centre moved by up to
    `max_shift` of the box's width/height and each side length scaled by a factor in
    [1 - max_scale, 1 + max_scale] (uniform, from Paddle's seeded generator). Returns [N*k, 4]."""
    boxes = paddle.tile(boxes.astype('float32'), [num_jitter, 1])
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    shift = paddle.uniform(size.shape, min=-max_shift, max=max_shift)
    scale = paddle.uniform(size.shape, min=1 - max_scale, max=1 + max_scale)
    centre = centre + shift * size
    half = size * scale / 2
    return paddle.concat([centre - half, centre + half], axis=1)


@register
class JitteredGTBBoxAssigner(BBoxAssigner):
    """BBoxAssigner (same arguments and sampling) plus `num_jitter` jittered copies of each
    ground-truth box among the proposals it samples from, in training."""
    __shared__ = ['num_classes', 'assign_on_cpu']

    def __init__(self, batch_size_per_im=512, fg_fraction=.25, fg_thresh=.5, bg_thresh=.5,
                 ignore_thresh=-1., use_random=True, cascade_iou=[0.5, 0.6, 0.7],
                 num_classes=80, assign_on_cpu=False, num_jitter=8, max_shift=0.15,
                 max_scale=0.25):
        super().__init__(batch_size_per_im=batch_size_per_im, fg_fraction=fg_fraction,
                         fg_thresh=fg_thresh, bg_thresh=bg_thresh, ignore_thresh=ignore_thresh,
                         use_random=use_random, cascade_iou=cascade_iou,
                         num_classes=num_classes, assign_on_cpu=assign_on_cpu)
        if num_jitter < 0 or not 0 <= max_shift < 1 or not 0 <= max_scale < 1:
            raise ValueError(f"JitteredGTBBoxAssigner: num_jitter={num_jitter} must be >= 0, "
                             f"max_shift={max_shift} and max_scale={max_scale} in [0, 1)")
        self.num_jitter = num_jitter
        self.max_shift = max_shift
        self.max_scale = max_scale

    def __call__(self, rpn_rois, rpn_rois_num, inputs, stage=0, is_cascade=False,
                 add_gt_as_proposals=True):
        if self.num_jitter and not is_cascade:
            rois = []
            for image_rois, gt_box in zip(rpn_rois, inputs['gt_bbox']):
                if gt_box.shape[0] > 0:
                    extra = jitter_boxes(gt_box, self.num_jitter, self.max_shift,
                                         self.max_scale)
                    image_rois = paddle.concat([image_rois, extra.detach()])
                rois.append(image_rois)
            rpn_rois = rois
            rpn_rois_num = paddle.to_tensor([r.shape[0] for r in rois], dtype='int32')
        return super().__call__(rpn_rois, rpn_rois_num, inputs, stage=stage,
                                is_cascade=is_cascade, add_gt_as_proposals=add_gt_as_proposals)
