"""Greedy NMS in the one form paddle2onnx converts: `multiclass_nms3` on one image's
[1, G, S] scores (G fixed groups, e.g. classes) over [1, S, 4] boxes, no keep_top_k.

paddle2onnx maps exactly this form to ONNX NonMaxSuppression (its mapper supports neither the
per-image-count (LoD) input nor a batch of images). The result is put in one order here: by
group, then by box index, which is the order of ppdet's per-image-count NMS (the batch form and
ONNX list by score). Scores at or below `score_threshold` are never kept, which is how callers
leave a box out of a group.

IoU with +1 pixel widths (`normalized=False`, the legacy convention): ONNX NonMaxSuppression has
no such mode, so the boxes are given to NMS with 1 added to x2 and y2, whose continuous IoU is the
+1 IoU (Paddle's op returns 0 for boxes less than a pixel apart without overlap, which then
overlap by under a pixel: no such pair can reach an IoU threshold >= 0.5 unless one box is
under a pixel wide or high).
"""
import paddle
from paddle import _C_ops

# Larger than any box count: Paddle reads nms_top_k as "keep the top k before NMS" and ONNX as
# "keep at most k per group after NMS"; both then keep everything.
ALL_BOXES = 1 << 30


def grouped_nms(boxes, scores, score_threshold, iou_threshold, normalized=True):
    """boxes [S, 4] (x1, y1, x2, y2), scores [G, S]. Returns (box index [K] int64, group [K]
    int64, score [K]) of the kept boxes, by group, then by box index."""
    nms_boxes = boxes if normalized else plus_one_corners(boxes)
    out, index, _ = _C_ops.multiclass_nms3(
        nms_boxes.unsqueeze(0), scores.unsqueeze(0), None, float(score_threshold), ALL_BOXES,
        -1, float(iou_threshold), True, 1.0, -1)
    index, group = index.reshape([-1]).astype('int64'), out[:, 0].astype('int64')
    order = paddle.argsort(group * paddle.shape(boxes)[0].astype('int64') + index)
    index, group = paddle.gather(index, order), paddle.gather(group, order)
    # Scores are read back here: paddle2onnx fills the op's score column assuming S is static.
    score = paddle.gather_nd(scores, paddle.stack([group, index], axis=1)).reshape([-1])
    return index, group, score


def plus_one_corners(boxes):
    """[S, 4] boxes with x2 and y2 one pixel further: their IoU is the +1 pixel IoU."""
    return paddle.concat([boxes[:, :2], boxes[:, 2:] + 1], axis=1)


def masked_scores(scores, member, drop_value):
    """scores where `member`, else `drop_value` (a value callers put below their threshold)."""
    return paddle.where(member, scores, paddle.full_like(scores, drop_value))
