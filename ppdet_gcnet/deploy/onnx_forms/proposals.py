"""RPN proposals without `generate_proposals` (which paddle2onnx cannot convert).

`ExportableRPNHead` is ppdet's RPNHead with, at inference on one image, each FPN level's
proposals computed the way Paddle's `generate_proposals` (v2, pixel_offset=False; `level_proposals`
also gives the op's pixel_offset=True, for the legacy pipeline) computes them:
top `pre_nms_top_n` scores, anchor + delta decoding (dw/dh clipped at log(1000/16)), clipping to
the image, dropping boxes narrower or lower than max(min_size, 1), NMS, top `post_nms_top_n`;
a level where no box survives the size filter yields one zero box of score 0, as the op does.
Levels are then joined as `RPNHead._gen_proposal` joins them for one image.
"""
import math

import paddle
from ppdet.modeling.proposal_generator.rpn_head import RPNHead

from .nms import grouped_nms, masked_scores

DELTA_CLIP = math.log(1000.0 / 16)
# RPN scores are logits: any real one is above this, and dropped boxes get _DROPPED.
_THRESHOLD, _DROPPED = -1e30, -3e38


def _plus(value, offset):
    return value + offset if offset else value


def decode_and_clip(anchors, deltas, im_hw, offset=0.0):
    """anchors, deltas [K, 4] -> boxes [K, 4] in the image (generate_proposals' box coder).
    `offset` 1: +1 pixel widths (`pixel_offset=True`): a box spans x1 .. x2 inclusive, is
    `x2 - x1 + 1` wide, and is clipped to the last pixel (`size - 1`)."""
    widths = _plus(anchors[:, 2] - anchors[:, 0], offset)
    heights = _plus(anchors[:, 3] - anchors[:, 1], offset)
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    ctr_x = deltas[:, 0] * widths + ctr_x
    ctr_y = deltas[:, 1] * heights + ctr_y
    widths = paddle.exp(paddle.clip(deltas[:, 2], max=DELTA_CLIP)) * widths
    heights = paddle.exp(paddle.clip(deltas[:, 3], max=DELTA_CLIP)) * heights
    height, width = _plus(im_hw[0], -offset), _plus(im_hw[1], -offset)
    zero = paddle.zeros_like(height)
    x1 = paddle.maximum(paddle.minimum(ctr_x - widths / 2, width), zero)
    y1 = paddle.maximum(paddle.minimum(ctr_y - heights / 2, height), zero)
    x2 = paddle.maximum(paddle.minimum(_plus(ctr_x + widths / 2, -offset), width), zero)
    y2 = paddle.maximum(paddle.minimum(_plus(ctr_y + heights / 2, -offset), height), zero)
    return paddle.stack([x1, y1, x2, y2], axis=1)


def level_proposals(scores, deltas, anchors, im_hw, generator, min_size=None,
                    pixel_offset=False):
    """One image, one level: scores [A, H, W], deltas [4A, H, W], anchors [H*W*A, 4] ->
    (rois [K, 4], scores [K]) as `generate_proposals` returns them (`min_size`: the op's, the
    generator's by default; `pixel_offset`: the op's, +1 pixel widths in decoding, clipping,
    the size filter and NMS)."""
    offset = 1.0 if pixel_offset else 0.0
    scores = paddle.transpose(scores, [1, 2, 0]).reshape([-1])
    deltas = paddle.transpose(deltas, [1, 2, 0]).reshape([-1, 4])
    count = paddle.shape(scores)[0:1]
    k = paddle.minimum(count, paddle.full_like(count, generator.pre_nms_top_n))
    if generator.pre_nms_top_n <= 0:
        k = count
    top_scores, top = paddle.topk(scores, k)
    boxes = decode_and_clip(paddle.gather(anchors, top), paddle.gather(deltas, top), im_hw,
                            offset)
    min_size = max(float(generator.min_size if min_size is None else min_size), 1.0)
    big_enough = paddle.logical_and(_plus(boxes[:, 2] - boxes[:, 0], offset) >= min_size,
                                    _plus(boxes[:, 3] - boxes[:, 1], offset) >= min_size)
    # One zero box of score 0 that only takes part when every box was dropped.
    any_kept = paddle.any(big_enough).reshape([1])
    boxes = paddle.concat([boxes, paddle.zeros([1, 4], boxes.dtype)])
    candidate_scores = paddle.concat([
        masked_scores(top_scores, big_enough, _DROPPED),
        paddle.where(any_kept, paddle.full([1], _DROPPED, top_scores.dtype),
                     paddle.zeros([1], top_scores.dtype))])
    keep, _, kept_scores = grouped_nms(boxes, candidate_scores.unsqueeze(0), _THRESHOLD,
                                       generator.nms_thresh, normalized=not pixel_offset)
    if generator.post_nms_top_n > 0:
        keep = keep[:generator.post_nms_top_n]
        kept_scores = kept_scores[:generator.post_nms_top_n]
    return paddle.gather(boxes, keep), kept_scores


class ExportableRPNHead(RPNHead):
    """RPNHead whose inference proposals avoid generate_proposals; one image per run."""

    def _gen_proposal(self, scores, bbox_deltas, anchors, inputs):
        if self.training:
            return super()._gen_proposal(scores, bbox_deltas, anchors, inputs)
        generator = self.test_proposal
        if generator.eta != 1.0:
            raise ValueError(f"adaptive NMS (eta={generator.eta}) has no ONNX form")
        # A generator that feeds the op transformed inputs (ppdet_gcnet.mmdet's) gets them here
        # too, and its rois back in image coordinates.
        op_inputs = getattr(generator, 'op_inputs', None)
        rois, probs = [], []
        for level_scores, level_deltas, level_anchors in zip(scores, bbox_deltas, anchors):
            im_shape, min_size = inputs['im_shape'][0:1], None
            if op_inputs is not None:
                level_scores, level_deltas, level_anchors, im_shape, min_size = op_inputs(
                    level_scores, level_deltas, level_anchors, im_shape)
            level_rois, level_probs = level_proposals(level_scores[0], level_deltas[0],
                                                      level_anchors, im_shape[0], generator,
                                                      min_size)
            rois.append(level_rois / getattr(generator, 'coordinate_scale', 1.0))
            probs.append(level_probs)
        rois, probs = paddle.concat(rois), paddle.concat(probs)
        if len(scores) > 1:
            # RPNHead._gen_proposal: the top post_nms_top_n by score when there are more, else
            # all in level order (a stable sort on rank keeps both without a branch).
            total = paddle.shape(probs)[0:1]
            limit = paddle.full_like(total, self.test_proposal.post_nms_top_n)
            position = paddle.arange(paddle.shape(probs)[0], dtype='float32')
            cut = paddle.expand(total > limit, paddle.shape(probs))
            order = paddle.argsort(paddle.where(cut, -probs, position), stable=True)
            order = order[:paddle.minimum(total, limit)[0]]
            rois = paddle.gather(rois, order)
        return [rois], paddle.shape(rois)[0:1].astype('int32')
