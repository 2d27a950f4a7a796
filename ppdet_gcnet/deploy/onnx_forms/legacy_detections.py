"""The legacy box decoding, detections and mask pasting (ppdet_gcnet.legacy.box_decode,
.mask_paste) for one image, in ops paddle2onnx converts.

- `ExportableLegacyRCNNBox`: `LegacyRCNNBox` without `box_coder` and the per-RoI image ids: RoIs
  divided by image 0's scale, decoded as fluid `box_coder` (`decode_center_size`, unnormalised:
  +1 pixel widths, variances, no dw/dh clamp), clipped to the original image's last pixel.
- `ExportableLegacyBBoxPostProcess`: the one-image detections form (`multiclass_nms3` in the
  [1, C, S] form; the +1 pixel IoU through `grouped_nms`), handing the mask head its RoIs in input
  coordinates and returning the detections in original coordinates, as `LegacyBBoxPostProcess`;
  an image without detections gets ppdet's placeholder row, divided by the scale as the legacy
  `get_pred` divides it.
- `ExportableLegacyMaskPostProcess`: `legacy_paste` on image 0 (without the batch loop).
"""
import paddle

from ...legacy.box_decode import LegacyBBoxPostProcess, LegacyRCNNBox, box_scale
from ...legacy.mask_paste import LegacyMaskPostProcess, legacy_paste
from .detections import ExportableBBoxPostProcess, with_placeholder


def decode_center_size(priors, deltas, variances):
    """priors [N, 4], deltas [N, C, 4] -> boxes [N, C, 4] as fluid `box_coder` decodes with
    `box_normalized=False` (float32, its order of operations)."""
    width = (priors[:, 2] - priors[:, 0] + 1).unsqueeze(1)
    height = (priors[:, 3] - priors[:, 1] + 1).unsqueeze(1)
    ctr_x = priors[:, 0].unsqueeze(1) + width / 2
    ctr_y = priors[:, 1].unsqueeze(1) + height / 2
    var_x, var_y, var_w, var_h = [paddle.full([1], v, 'float32') for v in variances]
    box_ctr_x = var_x * deltas[:, :, 0] * width + ctr_x
    box_ctr_y = var_y * deltas[:, :, 1] * height + ctr_y
    box_w = paddle.exp(var_w * deltas[:, :, 2]) * width
    box_h = paddle.exp(var_h * deltas[:, :, 3]) * height
    return paddle.stack([box_ctr_x - box_w / 2, box_ctr_y - box_h / 2,
                         box_ctr_x + box_w / 2 - 1, box_ctr_y + box_h / 2 - 1], axis=-1)


class ExportableLegacyRCNNBox(LegacyRCNNBox):
    """LegacyRCNNBox for one image."""

    def __call__(self, bbox_head_out, rois, im_shape, scale_factor):
        deltas, cls_prob = bbox_head_out
        roi_list, rois_num = rois
        roi = paddle.concat(roi_list) if len(roi_list) > 1 else roi_list[0]
        priors = roi / box_scale(scale_factor)[0:1]
        deltas = paddle.reshape(deltas, [paddle.shape(deltas)[0], -1, 4])
        boxes = decode_center_size(priors, deltas, [1.0 / v for v in self.prior_box_var])
        limit = self.clip_limits(im_shape, scale_factor)[0]                    # (w, h)
        zero = paddle.zeros_like(limit[0])
        boxes = paddle.stack([
            paddle.maximum(paddle.minimum(boxes[:, :, j], limit[j % 2]), zero)
            for j in range(4)], axis=-1)
        return (boxes, rois_num), cls_prob[:, :-1]


class ExportableLegacyBBoxPostProcess(ExportableBBoxPostProcess, LegacyBBoxPostProcess):

    def __call__(self, head_out, rois, im_shape, scale_factor):
        pred, num, _ = ExportableBBoxPostProcess.__call__(self, head_out, rois, im_shape,
                                                          scale_factor)
        scale = box_scale(scale_factor)[0:1]
        return paddle.concat([pred[:, :2], pred[:, 2:] * scale], axis=1), num, None

    def get_pred(self, bboxes, bbox_num, im_shape, scale_factor):
        bboxes, count = with_placeholder(bboxes, bbox_num)
        origin_shape = paddle.floor(im_shape / scale_factor + 0.5)
        self.origin_shape_list = paddle.expand(origin_shape[0:1], [count[0], 2])
        pred = paddle.concat([bboxes[:, :2], bboxes[:, 2:] / box_scale(scale_factor)[0:1]],
                             axis=1)
        return bboxes, pred, count


class ExportableLegacyMaskPostProcess(LegacyMaskPostProcess):

    def __call__(self, mask_out, bboxes, bbox_num, origin_shape):
        origin_shape = paddle.cast(origin_shape, 'int32')
        return legacy_paste(mask_out, bboxes[:, 2:], origin_shape[0, 0], origin_shape[0, 1],
                            self.binary_thresh)
