"""RPN proposals as mmdetection 2.x's RPNHead computes them at test time (and for training).

mmdetection, per FPN level: the `nms_pre` best sigmoid scores, anchors + deltas decoded with
dw/dh clamped to +-log(1000/16) (both sides), boxes clipped to the image, boxes of zero width or
height dropped (`min_bbox_size` 0: `w > 0 and h > 0`), then NMS over all levels with the level
as the class (= NMS per level) and the `max_per_img` best kept.

Paddle's `generate_proposals` (which ppdet's ProposalGenerator runs) differs in two places:
it clamps dw/dh only from above, and it drops boxes narrower or lower than max(min_size, 1)
pixel. `MMDetProposalGenerator` keeps the op (so exports and the ONNX forms work unchanged) and
feeds it what makes its result mmdetection's:
- deltas clamped from below at -log(1000/16) first (the op then clamps from above);
- anchors and image size scaled by 2**20: every step of the op (decoding, clipping, IoU) is
  exact under a power-of-two scale, so the boxes are the same bits, and the op's 1-pixel size
  filter drops only boxes under 2**-20 px (~1e-6 px) instead of under 1 px; rois are scaled back;
- scores are sigmoid probabilities, as mmdetection ranks them (ppdet ranks logits: the same
  order except where float32 sigmoids tie).
"""
import math

import paddle
import paddle.nn.functional as F
from ppdet.core.workspace import register, serializable
from ppdet.modeling.proposal_generator.proposal_generator import ProposalGenerator

# mmdetection's wh_ratio_clip 16/1000: |dw|, |dh| <= log(1000/16)
DELTA_CLAMP = abs(math.log(16 / 1000))
# power of two: exact scaling; boxes under 1 / SCALE px are the only ones the op's filter drops
SCALE = float(2 ** 20)


def lower_bounds(channels, bounds, dtype, ndim):
    """[1, channels, 1, ...] (ndim axes): `bounds` (4 values) repeated over the channels, built
    from `full` and `concat` only (paddle2onnx 2.1 crashes on an arange / remainder / where
    form of it in the RPN of some exports)."""
    trailing = [1] * (ndim - 2)
    parts = [paddle.full([1, 1] + trailing, b, dtype) for b in bounds]
    return paddle.concat(parts * (channels // 4), axis=1)


def clamp_size_deltas(deltas):
    """[N, 4A, ...] deltas (dx, dy, dw, dh per anchor): dw, dh clamped from below at
    -log(1000/16). (No default arguments: dy2static cannot resolve globals in them.)"""
    low = lower_bounds(deltas.shape[1], [-3.0e38, -3.0e38, -DELTA_CLAMP, -DELTA_CLAMP],
                       deltas.dtype, deltas.ndim)
    return paddle.maximum(deltas, low)


@register
@serializable
class MMDetProposalGenerator(ProposalGenerator):
    """ppdet's ProposalGenerator (same settings) giving mmdetection's proposals (module doc).
    `min_size` is mmdetection's `min_bbox_size` (kept: w and h > min_size)."""
    coordinate_scale = SCALE   # op coordinates / image coordinates

    def __init__(self, pre_nms_top_n=1000, post_nms_top_n=1000, nms_thresh=0.7, min_size=0.0,
                 eta=1., topk_after_collect=False):
        super().__init__(pre_nms_top_n=pre_nms_top_n, post_nms_top_n=post_nms_top_n,
                         nms_thresh=nms_thresh, min_size=min_size, eta=eta,
                         topk_after_collect=topk_after_collect)

    def op_inputs(self, scores, bbox_deltas, anchors, im_shape):
        """What `generate_proposals` (or its ONNX form) is given: sigmoid scores, deltas clamped
        from below, anchors and image size times SCALE, and the op's min_size."""
        return (F.sigmoid(scores), clamp_size_deltas(bbox_deltas), anchors * SCALE,
                im_shape * SCALE, float(self.min_size) * SCALE)

    def __call__(self, scores, bbox_deltas, anchors, im_shape):
        top_n = self.pre_nms_top_n if self.topk_after_collect else self.post_nms_top_n
        scores, deltas, anchors, im_shape, min_size = self.op_inputs(
            scores, bbox_deltas, anchors, im_shape)
        rois, probs, rois_num = paddle.vision.ops.generate_proposals(
            scores, deltas, im_shape, anchors, paddle.ones_like(anchors),
            pre_nms_top_n=self.pre_nms_top_n, post_nms_top_n=top_n,
            nms_thresh=self.nms_thresh, min_size=min_size, eta=self.eta,
            pixel_offset=False, return_rois_num=True)
        return rois / SCALE, probs, rois_num, self.post_nms_top_n
