"""R-CNN box post-processing and mask head for one image, in ops paddle2onnx converts.

`ExportableBBoxPostProcess`: ppdet's BBoxPostProcess whose NMS is `multiclass_nms3` in the
[1, C, S] form (the per-image-count form has no ONNX mapping): the class-specific boxes [M, C, 4]
are laid out as S = M * C boxes and class c scores only its own boxes (with ClassAgnosticNMS, all
S boxes form one group and each kept box's class is its index modulo C). Then, as
`multiclass_nms3` does per image: at most `keep_top_k` rows, the best by score, listed class by
class, by box index within a class. `get_pred` is ppdet's rescaling and clipping for one image,
with the one placeholder row [0, 0, 0, 0, 1, 1] for an image without detections selected by a
slice instead of an `if`.

`ExportableMaskHead`: ppdet's MaskHead without the `if` on the detection count and with each
detection's class channel taken by `gather_nd`; an image without detections gets one [M, M]
mask of -1 for its placeholder row (ppdet: [1, 1, 1]).
"""
import paddle
import paddle.nn.functional as F
from ppdet.modeling.bbox_utils import delta2bbox, nonempty_bbox
from ppdet.modeling.heads.mask_head import MaskHead
from ppdet.modeling.layers import RCNNBox
from ppdet.modeling.post_process import BBoxPostProcess

from .nms import grouped_nms, masked_scores

_DROPPED = -1.0  # class probabilities are >= 0, thresholds >= 0


def multiclass_nms_one_image(boxes, scores, nms):
    """boxes [M, C, 4], scores [M, C] -> ([K, 6] (class, score, box), count [1] int32)."""
    num_classes = scores.shape[1]
    flat_boxes = boxes.reshape([-1, 4])                         # box (m, c) at m * C + c
    flat_scores = scores.reshape([1, -1])                       # [1, M * C]
    agnostic = getattr(nms, 'class_agnostic', False)
    if agnostic:  # one group: every class's boxes suppress each other (ClassAgnosticNMS)
        grouped = flat_scores
    else:         # class c scores only its own boxes
        box_class = paddle.arange(num_classes, dtype='int64').tile([paddle.shape(scores)[0]])
        classes = paddle.arange(num_classes, dtype='int64').unsqueeze(1)
        grouped = masked_scores(paddle.expand(flat_scores, [num_classes, -1]),
                                box_class.unsqueeze(0) == classes, _DROPPED)
    if nms.score_threshold < 0:
        raise ValueError(f"score_threshold {nms.score_threshold} < 0 has no ONNX form here")
    keep, label, score = grouped_nms(flat_boxes, grouped, nms.score_threshold,
                                     nms.nms_threshold, nms.normalized)
    if agnostic:
        label = keep % num_classes
    if nms.keep_top_k > 0:
        # The best keep_top_k by score, still listed class by class.
        rank = paddle.argsort(paddle.argsort(-score, stable=True), stable=True)
        chosen = paddle.nonzero(rank < nms.keep_top_k).reshape([-1])
        keep, label, score = (paddle.gather(keep, chosen), paddle.gather(label, chosen),
                              paddle.gather(score, chosen))
    rows = paddle.concat([label.astype(score.dtype).unsqueeze(1), score.unsqueeze(1),
                          paddle.gather(flat_boxes, keep)], axis=1)
    return rows, paddle.shape(rows)[0:1].astype('int32')


def clip_to_image(boxes, im_hw):
    """boxes [..., 4] clipped to [0, w] x [0, h]."""
    height, width = im_hw[0], im_hw[1]
    zero = paddle.zeros_like(height)
    limits = (width, height, width, height)
    return paddle.stack([paddle.maximum(paddle.minimum(boxes[..., j], limits[j]), zero)
                         for j in range(4)], axis=-1)


def with_placeholder(bboxes, bbox_num):
    """One image's detections [K, 6], or ppdet's placeholder row [0, 0, 0, 0, 1, 1] when K is 0
    (a slice instead of an `if`). Returns (rows, count [1])."""
    placeholder = paddle.concat([paddle.zeros([1, 4], bboxes.dtype),
                                 paddle.ones([1, 2], bboxes.dtype)], axis=1)
    count = paddle.maximum(bbox_num, paddle.ones_like(bbox_num))
    return paddle.concat([bboxes, placeholder])[:count[0]], count


class ExportableRCNNBox(RCNNBox):
    """RCNNBox for one image: every RoI is clipped to image 0's shape."""

    def __call__(self, bbox_head_out, rois, im_shape, scale_factor):
        bbox_pred, cls_prob = bbox_head_out[0], bbox_head_out[1]
        roi, rois_num = rois
        boxes = paddle.concat(roi) if len(roi) > 1 else roi[0]
        boxes = delta2bbox(bbox_pred, boxes, self.prior_box_var)
        boxes = paddle.expand(boxes, [paddle.shape(boxes)[0], self.num_classes, 4])
        return (clip_to_image(boxes, im_shape[0]), rois_num), cls_prob[:, :-1]


class ExportableBBoxPostProcess(BBoxPostProcess):

    def __call__(self, head_out, rois, im_shape, scale_factor):
        if self.nms is None:
            return super().__call__(head_out, rois, im_shape, scale_factor)
        (bboxes, _), score = self.decode(head_out, rois, im_shape, scale_factor)
        bbox_pred, bbox_num = multiclass_nms_one_image(bboxes, score, self.nms)
        return bbox_pred, bbox_num, None

    def get_pred(self, bboxes, bbox_num, im_shape, scale_factor):
        bboxes, count = with_placeholder(bboxes, bbox_num)
        origin_shape = paddle.floor(im_shape / scale_factor + 0.5)
        self.origin_shape_list = paddle.expand(origin_shape[0:1], [count[0], 2])
        box_scale = paddle.concat([scale_factor[:, 1:2], scale_factor[:, 0:1]] * 2, axis=1)
        scaled = bboxes[:, 2:] / box_scale
        clipped = clip_to_image(scaled, origin_shape[0])
        keep = paddle.unsqueeze(nonempty_bbox(clipped, return_mask=True), [1])
        label = paddle.where(keep, bboxes[:, 0:1], paddle.full_like(bboxes[:, 0:1], -1))
        return bboxes, paddle.concat([label, bboxes[:, 1:2], clipped], axis=1), count


class ExportableMaskHead(MaskHead):

    def forward_test(self, body_feats, rois, rois_num, scale_factor, feat_func=None):
        labels = rois[:, 0].astype('int64')
        rois_feat = self.roi_extractor(body_feats, [rois[:, 2:]], rois_num)
        if self.share_bbox_feat:
            rois_feat = feat_func(rois_feat)
        # a head with its own mask probabilities (ppdet_gcnet.mmdet's cascade head) gives them
        probabilities = getattr(self, 'mask_probabilities', None)
        if probabilities is not None:
            mask_prob = probabilities(rois_feat)
        else:
            mask_prob = F.sigmoid(self.mask_fcn_logits(self.head(rois_feat)))
        if self.num_classes == 1:
            masks = mask_prob[:, 0, :, :]
        else:  # each detection's own class channel (ppdet indexes with two tensors instead)
            rows = paddle.arange(paddle.shape(labels)[0], dtype='int64')
            masks = paddle.gather_nd(mask_prob, paddle.stack([rows, labels], 1))
        size = 2 * self.roi_extractor.resolution  # MaskFeat upsamples the pooled RoI 2x
        filler = paddle.full([1, size, size], -1, masks.dtype)
        count = paddle.maximum(rois_num, paddle.ones_like(rois_num))
        return paddle.concat([masks, filler])[:count[0]]
