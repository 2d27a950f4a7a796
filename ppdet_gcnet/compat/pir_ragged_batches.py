"""Exported R-CNNs on a batch: per-image results of different sizes, which PIR cannot join.

Defect: in a static graph, ppdet's R-CNN inference walks the batch image by image in three
places and concatenates what it collected: `RPNHead._gen_proposal` (each image's proposals),
`RCNNBox.__call__` (each image's shape, repeated once per proposal) and
`BBoxPostProcess.get_pred` (each image's detections, scales and shapes). Traced with Paddle 3's
default PIR, such a loop becomes a `while` op and the list a tensor array, joined by
`array_to_tensor`, whose Paddle 3.3.1 kernel requires every element to have the same shape
("The dims of input in ArrayToTensor must be equal"). So an exported Mask R-CNN runs on one
image, or on a batch whose images happen to get equal counts, and fails on any other batch.
Dygraph is not affected (lists stay Python lists). Upstream PaddleDetection keeps these loops;
this is a Paddle 3 limitation the project works around, not an upstream fix it restores.

Restores: batched inference of the exported model, as the dygraph model does it: for a batch,
the per-image results are those of each image run alone, concatenated in image order.

Fix: in a static graph only (dygraph and training keep ppdet's per-image code), the three are
computed without per-image lists, from the per-image counts: `repeat_interleave` gives each row
its image, sorts and gathers do the rest. The RPN keeps each image's top `post_nms_top_n` in the
order the per-image code gives them (by score when cut, else level by level), so detections
match it row for row. The replaced methods delegate to the ones they replace in dygraph.
"""
import numpy as np

from ._patching import original, replace

NAME = 'pir_ragged_batches'


def _classes():
    from ppdet.modeling.layers import RCNNBox
    from ppdet.modeling.post_process import BBoxPostProcess
    from ppdet.modeling.proposal_generator.rpn_head import RPNHead
    return RPNHead, RCNNBox, BBoxPostProcess


def _in_static_graph():
    import paddle
    return not paddle.in_dynamic_mode()


def row_image_ids(counts):
    """[2, 0, 3] -> [0, 0, 2, 2, 2]: the image each row of a batch's concatenation belongs to."""
    import paddle
    images = paddle.arange(paddle.shape(counts)[0], dtype='int32')
    return paddle.repeat_interleave(images, counts.astype('int32'), axis=0)


def row_starts(counts):
    """[2, 0, 3] -> [0, 2, 2]: where each image's rows begin in the concatenation."""
    import paddle
    counts = counts.astype('int32')
    return paddle.cumsum(counts).astype('int32') - counts


def batched_proposals(self, scores, bbox_deltas, anchors, inputs):
    """`_gen_proposal` for a whole batch at once: ([all images' rois], counts [batch])."""
    import paddle
    prop_gen = self.train_proposal if self.training else self.test_proposal
    im_shape = inputs['im_shape']
    rois, probs, image_ids, totals = [], [], [], None
    for level_scores, level_deltas, level_anchors in zip(scores, bbox_deltas, anchors):
        level_rois, level_probs, level_num, post_nms_top_n = prop_gen(
            scores=level_scores, bbox_deltas=level_deltas, anchors=level_anchors,
            im_shape=im_shape)  # the op proposes image by image and returns counts per image
        level_num = level_num.astype('int32')
        rois.append(level_rois)
        probs.append(level_probs.flatten())
        image_ids.append(row_image_ids(level_num))
        totals = level_num if totals is None else totals + level_num
    rois, probs, image_ids = paddle.concat(rois), paddle.concat(probs), paddle.concat(image_ids)
    # Within an image: by score when it has more than post_nms_top_n (then cut), else in level
    # order, as the per-image code does; images stay in batch order (stable sorts).
    by_score = paddle.gather(totals > post_nms_top_n, image_ids)
    position = paddle.arange(paddle.shape(probs)[0], dtype='float32')
    within = paddle.argsort(paddle.where(by_score, -probs, position), stable=True)
    order = paddle.gather(within, paddle.argsort(paddle.gather(image_ids, within), stable=True))
    rank = (paddle.arange(paddle.shape(order)[0], dtype='int32') -
            paddle.gather(row_starts(totals), paddle.gather(image_ids, order)))
    keep = paddle.gather(order, paddle.nonzero(rank < post_nms_top_n).flatten())
    counts = paddle.minimum(totals, paddle.full_like(totals, post_nms_top_n))
    return [paddle.gather(rois, keep)], counts


def gen_proposal(self, scores, bbox_deltas, anchors, inputs):
    if _in_static_graph() and not self.training and not self.export_onnx:
        return batched_proposals(self, scores, bbox_deltas, anchors, inputs)
    return original(gen_proposal)(self, scores, bbox_deltas, anchors, inputs)


def batched_rcnn_box(self, bbox_head_out, rois, im_shape, scale_factor):
    """`RCNNBox.__call__` with each proposal's image shape gathered, not looped."""
    import paddle
    from ppdet.modeling.bbox_utils import delta2bbox
    bbox_pred, cls_prob = bbox_head_out[0], bbox_head_out[1]
    roi, rois_num = rois
    shape_per_roi = paddle.gather(im_shape, row_image_ids(rois_num))
    boxes = paddle.concat(roi) if len(roi) > 1 else roi[0]
    boxes = delta2bbox(bbox_pred, boxes, self.prior_box_var)
    boxes = paddle.expand(boxes, [boxes.shape[0], self.num_classes, boxes.shape[-1]])
    height = paddle.unsqueeze(shape_per_roi[:, 0], axis=1)
    width = paddle.unsqueeze(shape_per_roi[:, 1], axis=1)
    zeros = paddle.zeros_like(height)
    limits = (width, height, width, height)
    boxes = paddle.stack([paddle.maximum(paddle.minimum(boxes[:, :, j], limits[j]), zeros)
                          for j in range(4)], axis=-1)
    return (boxes, rois_num), cls_prob[:, :-1]


def rcnn_box_call(self, bbox_head_out, rois, im_shape, scale_factor):
    if _in_static_graph() and not self.export_onnx:
        return batched_rcnn_box(self, bbox_head_out, rois, im_shape, scale_factor)
    return original(rcnn_box_call)(self, bbox_head_out, rois, im_shape, scale_factor)


def batched_get_pred(self, bboxes, bbox_num, im_shape, scale_factor):
    """`get_pred` (placeholder row for an image without detections, rescale, clip, label empty
    boxes -1) with each row's image found by `repeat_interleave` instead of a loop."""
    import paddle
    from ppdet.modeling.bbox_utils import nonempty_bbox
    bbox_num = bbox_num.astype('int32')
    empty = bbox_num == 0
    out_num = paddle.where(empty, paddle.ones_like(bbox_num), bbox_num)
    image_ids = row_image_ids(out_num)
    offset = (paddle.arange(paddle.shape(image_ids)[0], dtype='int32') -
              paddle.gather(row_starts(out_num), image_ids))
    source = paddle.gather(row_starts(bbox_num), image_ids) + offset
    placeholder = paddle.to_tensor(np.array([[0., 0., 0., 0., 1., 1.]], 'float32'))
    padded = paddle.concat([bboxes, placeholder])  # the placeholder is the last row
    last_row = paddle.zeros_like(source) + (paddle.shape(padded)[0] - 1).astype('int32')
    bboxes = paddle.gather(padded, paddle.where(paddle.gather(empty, image_ids), last_row, source))

    origin_shape = paddle.floor(im_shape / scale_factor + 0.5)
    # scale_factor rows are [scale_y, scale_x]; boxes are x1, y1, x2, y2.
    box_scale = paddle.concat([scale_factor[:, 1:2], scale_factor[:, 0:1]] * 2, axis=1)
    self.origin_shape_list = paddle.gather(origin_shape, image_ids)
    scaled = bboxes[:, 2:] / paddle.gather(box_scale, image_ids)
    height, width = self.origin_shape_list[:, 0], self.origin_shape_list[:, 1]
    zeros = paddle.zeros_like(height)
    limits = (width, height, width, height)
    clipped = paddle.stack([paddle.maximum(paddle.minimum(scaled[:, j], limits[j]), zeros)
                            for j in range(4)], axis=-1)
    keep = paddle.unsqueeze(nonempty_bbox(clipped, return_mask=True), [1])
    label = paddle.where(keep, bboxes[:, 0:1], paddle.ones_like(bboxes[:, 0:1]) * -1)
    return bboxes, paddle.concat([label, bboxes[:, 1:2], clipped], axis=1), out_num


def get_pred(self, bboxes, bbox_num, im_shape, scale_factor):
    if _in_static_graph() and not self.export_onnx and not self.export_eb:
        return batched_get_pred(self, bboxes, bbox_num, im_shape, scale_factor)
    return original(get_pred)(self, bboxes, bbox_num, im_shape, scale_factor)


def probe():
    """Trace the installed `get_pred` into a PIR program and run it on a batch of two images
    with 2 and 0 detections; True if it fails or is wrong (the other two methods have the same
    loop-and-concatenate shape, so one probe speaks for the three)."""
    import paddle
    from paddle.static import InputSpec
    from . import bbox_post_process
    post = _classes()[2](num_classes=3)

    def predictions(bboxes, bbox_num, im_shape, scale_factor):
        return post.get_pred(bboxes, bbox_num, im_shape, scale_factor)[1]

    traced = paddle.jit.to_static(predictions, full_graph=True, input_spec=[
        InputSpec([-1, 6], 'float32'), InputSpec([-1], 'int32'), InputSpec([-1, 2], 'float32'),
        InputSpec([-1, 2], 'float32')])
    try:
        result = traced(**bbox_post_process._tiny_case())
    except Exception:  # Paddle raises ValueError, EnforceNotMet, ... depending on the stage
        return True
    return not np.allclose(result.numpy(), bbox_post_process.TINY_CASE_EXPECTED)


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    rpn_head, rcnn_box, bbox_post = _classes()
    return [(rpn_head, '_gen_proposal'), (rcnn_box, '__call__'), (bbox_post, 'get_pred')]


def apply():
    rpn_head, rcnn_box, bbox_post = _classes()
    changed = [replace(rpn_head, '_gen_proposal', gen_proposal, NAME),
               replace(rcnn_box, '__call__', rcnn_box_call, NAME),
               replace(bbox_post, 'get_pred', get_pred, NAME)]
    return any(changed)
