"""Box post-processing: 0-D per-image counts and scale factors concatenated.

Defect: `ppdet.modeling.post_process.BBoxPostProcess.get_pred` (PaddleDetection 2.6), used by
every R-CNN at eval, inference and export, concatenates `bbox_num[i]` per image (mixed with a
1-D placeholder count for images without detections) and builds each image's rescaling vector
with `paddle.concat([scale_factor[i][1], scale_factor[i][0], ...])`. Since Paddle 2.5 those
indexed elements are 0-D tensors and both concats raise, so evaluation and inference fail.

Restores: PaddleDetection PRs #8112 and #8423 (develop, 2023; cherry-picked to release/2.6 as
#8653, after the 2.6.0 wheel was built) slice instead of indexing (`bbox_num[i:i + 1]`,
`scale_factor[i, 1:2]`), so `get_pred` again returns (bboxes, [N, 6] predictions in original
image coordinates, clipped, empty boxes labelled -1, and counts of shape [batch_size]), with one
placeholder box [0, 0, 0, 0, 1, 1] for an image without detections.

Fix: `BBoxPostProcess.get_pred` is replaced by `get_pred` below (same contract).
"""
import numpy as np

from ._patching import replace

NAME = 'bbox_post_process'


def _bbox_post_process_class():
    from ppdet.modeling.post_process import BBoxPostProcess
    return BBoxPostProcess


def get_pred(self, bboxes, bbox_num, im_shape, scale_factor):
    """Rescale NMS output [label, score, x1, y1, x2, y2] to original image coordinates."""
    import paddle
    from ppdet.modeling.bbox_utils import nonempty_bbox
    if self.export_eb:  # EdgeBoard export keeps the raw NMS output
        return bboxes, bboxes, bbox_num

    if not self.export_onnx:
        # An image without detections gets one placeholder box, so every image has a row.
        placeholder_box = paddle.to_tensor(np.array([[0., 0., 0., 0., 1., 1.]], 'float32'))
        placeholder_num = paddle.to_tensor(np.array([1], 'int32'))
        boxes_list, num_list, start = [], [], 0
        for i in range(bbox_num.shape[0]):
            if bbox_num[i] == 0:
                boxes_list.append(placeholder_box)
                num_list.append(placeholder_num)
            else:
                boxes_list.append(bboxes[start:start + bbox_num[i], :])
                num_list.append(bbox_num[i:i + 1])
                start += bbox_num[i]
        bboxes = paddle.concat(boxes_list)
        bbox_num = paddle.concat(num_list)

    origin_shape = paddle.floor(im_shape / scale_factor + 0.5)
    # scale_factor rows are [scale_y, scale_x]; boxes are x1, y1, x2, y2.
    box_scale = paddle.concat([scale_factor[:, 1:2], scale_factor[:, 0:1]] * 2, axis=1)
    if not self.export_onnx:
        shape_rows, scale_rows = [], []
        for i in range(bbox_num.shape[0]):
            shape_rows.append(paddle.expand(origin_shape[i:i + 1, :], [bbox_num[i], 2]))
            scale_rows.append(paddle.expand(box_scale[i:i + 1, :], [bbox_num[i], 4]))
        self.origin_shape_list = paddle.concat(shape_rows)
        scale_per_box = paddle.concat(scale_rows)
    else:  # ONNX export: batch size 1
        self.origin_shape_list = paddle.expand(origin_shape, [bbox_num[0], 2])
        scale_per_box = paddle.expand(box_scale[0:1, :], [bbox_num[0], 4])

    label, score = bboxes[:, 0:1], bboxes[:, 1:2]
    scaled = bboxes[:, 2:] / scale_per_box
    origin_h = self.origin_shape_list[:, 0]
    origin_w = self.origin_shape_list[:, 1]
    zeros = paddle.zeros_like(origin_h)
    limits = (origin_w, origin_h, origin_w, origin_h)
    clipped = paddle.stack([paddle.maximum(paddle.minimum(scaled[:, j], limits[j]), zeros)
                            for j in range(4)], axis=-1)
    keep = paddle.unsqueeze(nonempty_bbox(clipped, return_mask=True), [1])
    label = paddle.where(keep, label, paddle.ones_like(label) * -1)
    return bboxes, paddle.concat([label, score, clipped], axis=1), bbox_num


def _tiny_case():
    """Two images: the first with two boxes at scale (y 0.5, x 2), the second with none."""
    import paddle
    bboxes = paddle.to_tensor(np.array([[0, 0.9, 2, 1, 10, 5], [1, 0.8, 4, 4, 4, 8]],
                                       'float32'))
    return dict(bboxes=bboxes, bbox_num=paddle.to_tensor(np.array([2, 0], 'int32')),
                im_shape=paddle.to_tensor(np.array([[4, 16], [8, 8]], 'float32')),
                scale_factor=paddle.to_tensor(np.array([[0.5, 2], [1, 1]], 'float32')))


# Expected result of the tiny case, worked out by hand: origin size 8x8 for image one; box one
# -> x/2, y*2 = [1, 2, 5, 10] clipped to h=8 -> [1, 2, 5, 8]; box two is empty after rescaling
# ([2, 8, 2, 16] -> width 0) and gets label -1; image two gets the placeholder box.
TINY_CASE_EXPECTED = np.array([[0, 0.9, 1, 2, 5, 8], [-1, 0.8, 2, 8, 2, 8],
                               [0, 0, 0, 0, 1, 1]], 'float32')


def probe():
    """Run the installed `get_pred` on the tiny case; True if it fails or is wrong."""
    post = _bbox_post_process_class()(num_classes=3)
    try:
        _, pred, num = post.get_pred(**_tiny_case())
    except (ValueError, RuntimeError):
        return True
    return num.numpy().tolist() != [2, 1] or not np.allclose(pred.numpy(), TINY_CASE_EXPECTED)


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    return [(_bbox_post_process_class(), 'get_pred')]


def apply():
    return replace(_bbox_post_process_class(), 'get_pred', get_pred, NAME)
