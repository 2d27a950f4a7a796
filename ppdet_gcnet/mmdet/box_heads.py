"""R-CNN box heads whose test-time box decoding is mmdetection 2.x's DeltaXYWHBBoxCoder.

ppdet's `delta2bbox` (RCNNBox, CascadeHead's stage refinement) clamps dw/dh at log(1000/16)
from above only; mmdetection clamps both sides (a box shrinks at most 1000/16 times). The heads
here clamp their deltas from below before ppdet decodes them; everything else (parameters,
training losses, the decoders) is ppdet's.

    MMDetBBoxHead      Mask/Faster R-CNN head: test-time deltas clamped from below
    MMDetCascadeHead   Cascade R-CNN head: the same at every stage's refinement and at the end,
                       and class scores = softmax of the stages' mean logits (mmdetection's
                       CascadeRoIHead; ppdet averages the stages' softmax probabilities)
"""
import paddle
import paddle.nn.functional as F
from ppdet.core.workspace import register
from ppdet.modeling.heads.bbox_head import BBoxHead
from ppdet.modeling.heads.cascade_head import CascadeHead

from .proposals import DELTA_CLAMP, lower_bounds


def clamp_box_deltas(deltas, weights):
    """[N, 4C] encoded deltas (dx, dy, dw, dh per class, times `weights`): dw and dh clamped
    from below so that the decoded dw / weights[2], dh / weights[3] >= -log(1000/16)."""
    low = lower_bounds(deltas.shape[-1], [-3.0e38, -3.0e38, -DELTA_CLAMP * weights[2],
                                          -DELTA_CLAMP * weights[3]], deltas.dtype, 2)
    return paddle.maximum(deltas, low)


@register
class MMDetBBoxHead(BBoxHead):
    def get_prediction(self, score, delta):
        # two-argument super: dy2static's rewrite of the bare form recurses in subclasses
        return super(MMDetBBoxHead, self).get_prediction(
            score, clamp_box_deltas(delta, self.bbox_weight))


@register
class MMDetCascadeHead(CascadeHead):
    def _get_pred_bbox(self, deltas, proposals, weights):
        return super(MMDetCascadeHead, self)._get_pred_bbox(
            clamp_box_deltas(deltas, weights), proposals, weights)

    def get_prediction(self, head_out_list):
        logits = paddle.add_n([scores for scores, _, _ in head_out_list])
        _, deltas, rois = head_out_list[-1]      # boxes from the last stage, as both do
        deltas = clamp_box_deltas(deltas, self.bbox_weight[-1])
        return F.softmax(logits / self.num_cascade_stages), deltas, rois
