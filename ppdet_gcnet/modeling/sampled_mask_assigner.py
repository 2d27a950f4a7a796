"""Mask targets for at most a fixed number of foreground RoIs per image.

The mask head trains on every foreground RoI the box sampler keeps. With many foreground RoIs
per image (JitteredGTBBoxAssigner adds copies of every object), the mask head's forward and
backward pass over them becomes a large part of a training step on CPU, while the masks of
these RoIs are near-duplicates. `SampledMaskAssigner` keeps a random `max_fg_per_im` of them
(Paddle's seeded generator) for the mask loss; the box head still trains on all of them.
"""
import paddle
from ppdet.core.workspace import register
from ppdet.modeling.proposal_generator.target_layer import MaskAssigner

__all__ = ['SampledMaskAssigner']


@register
class SampledMaskAssigner(MaskAssigner):
    """MaskAssigner (same targets) over at most `max_fg_per_im` random foreground RoIs of each
    image; the other foreground RoIs are left out of the mask loss."""
    __shared__ = ['num_classes', 'mask_resolution']

    def __init__(self, num_classes=80, mask_resolution=14, max_fg_per_im=16):
        super().__init__(num_classes=num_classes, mask_resolution=mask_resolution)
        if max_fg_per_im < 1:
            raise ValueError(f"SampledMaskAssigner: max_fg_per_im={max_fg_per_im} must be >= 1")
        self.max_fg_per_im = max_fg_per_im

    def __call__(self, rois, tgt_labels, tgt_gt_inds, inputs):
        labels = [self._keep_some_foreground(image_labels) for image_labels in tgt_labels]
        return super().__call__(rois, labels, tgt_gt_inds, inputs)

    def _keep_some_foreground(self, labels):
        """labels with all but `max_fg_per_im` random foreground RoIs relabelled background."""
        fg = paddle.nonzero(paddle.logical_and(labels != -1, labels != self.num_classes))
        extra = fg.shape[0] - self.max_fg_per_im
        if extra <= 0:
            return labels
        dropped = paddle.gather(fg.reshape([-1]), paddle.randperm(fg.shape[0])[:extra])
        background = paddle.full([extra], self.num_classes, labels.dtype)
        return paddle.scatter(labels, dropped, background)
