"""Legacy box decoding and NMS (legacy BBoxHead.get_prediction).

The legacy head decodes in *original image* coordinates: RoIs divided by the image scale, fluid
`box_coder` (`decode_center_size`, variances [0.1, 0.1, 0.2, 0.2], +1 pixel widths: a box ends
at `centre + w / 2 - 1`, no clamp on dw/dh), then `box_clip` to the original image (`size - 1`), then multi-class NMS with +1 pixel IoU on
those original-scale boxes. ppdet decodes in input coordinates with continuous widths, clamps
dw/dh at log(1000/16), clips to the resized image and runs NMS there; the +1 IoU is not
scale-invariant, so the order of decode, rescale and NMS matters for exactness.

`LegacyBBoxPostProcess` hands the mask head the detections in input coordinates (legacy: boxes
times the scale, the mask RoIs) and returns them in original coordinates from `get_pred`,
unclipped beyond what `box_clip` did and without relabelling thin boxes.
"""
import paddle
from ppdet.core.workspace import register, serializable
from ppdet.modeling.layers import RCNNBox
from ppdet.modeling.post_process import BBoxPostProcess

from ..compat.pir_ragged_batches import row_image_ids


def box_scale(scale_factor):
    """[batch, 4] (sx, sy, sx, sy) from ppdet's [batch, 2] (sy, sx) scale factors."""
    return paddle.concat([scale_factor[:, 1:2], scale_factor[:, 0:1]] * 2, axis=1)


@register
@serializable
class LegacyRCNNBox(RCNNBox):
    __shared__ = ['num_classes', 'export_onnx']

    def __init__(self, prior_box_var=[10., 10., 5., 5.], num_classes=80, export_onnx=False):
        super().__init__(prior_box_var=prior_box_var, code_type='decode_center_size',
                         box_normalized=False, num_classes=num_classes,
                         export_onnx=export_onnx)

    @staticmethod
    def clip_limits(im_shape, scale_factor):
        """[batch, 2] (w, h): the largest legacy coordinate, original size - 1."""
        origin_hw = paddle.floor(im_shape / scale_factor + 0.5)
        return paddle.concat([origin_hw[:, 1:2], origin_hw[:, 0:1]], axis=1) - 1

    def __call__(self, bbox_head_out, rois, im_shape, scale_factor):
        deltas, cls_prob = bbox_head_out
        roi_list, rois_num = rois
        roi = paddle.concat(roi_list) if len(roi_list) > 1 else roi_list[0]
        image = row_image_ids(rois_num)
        prior = roi / paddle.gather(box_scale(scale_factor), image)
        deltas = paddle.reshape(deltas, [paddle.shape(deltas)[0], -1, 4])
        boxes = paddle.vision.ops.box_coder(
            prior, [1.0 / v for v in self.prior_box_var], deltas,
            code_type='decode_center_size', box_normalized=False, axis=1)
        limit = paddle.gather(self.clip_limits(im_shape, scale_factor), image)   # [N, 2]
        limit_w, limit_h = limit[:, 0:1], limit[:, 1:2]
        zero = paddle.zeros_like(limit_w)
        boxes = paddle.stack([
            paddle.maximum(paddle.minimum(boxes[:, :, 0], limit_w), zero),
            paddle.maximum(paddle.minimum(boxes[:, :, 1], limit_h), zero),
            paddle.maximum(paddle.minimum(boxes[:, :, 2], limit_w), zero),
            paddle.maximum(paddle.minimum(boxes[:, :, 3], limit_h), zero)], axis=-1)
        return (boxes, rois_num), cls_prob[:, :-1]


@register
class LegacyBBoxPostProcess(BBoxPostProcess):
    def __call__(self, head_out, rois, im_shape, scale_factor):
        pred, num, keep = super().__call__(head_out, rois, im_shape, scale_factor)
        if paddle.in_dynamic_mode() and pred.shape[0] == 0:
            return pred, num, keep
        # mask RoIs in input coordinates, as the legacy `bbox * im_scale`
        scale = paddle.gather(box_scale(scale_factor), row_image_ids(num))
        return paddle.concat([pred[:, :2], pred[:, 2:] * scale], axis=1), num, keep

    def get_pred(self, bboxes, bbox_num, im_shape, scale_factor):
        # ppdet's get_pred supplies the placeholder rows and origin shapes; the boxes are put
        # back to the legacy ones (original coordinates, clipped only by the legacy box_clip)
        bboxes, pred, bbox_num = super().get_pred(bboxes, bbox_num, im_shape, scale_factor)
        scale = paddle.gather(box_scale(scale_factor), row_image_ids(bbox_num))
        pred = paddle.concat([bboxes[:, :2], bboxes[:, 2:] / scale], axis=1)
        return bboxes, pred, bbox_num
