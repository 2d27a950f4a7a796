"""Legacy mask pasting (legacy `mask2out`, run in Python after the network).

Per detection: the 28x28 probability map is padded by one zero pixel on each side (30x30), the
box is enlarged by 30/28 about its centre and truncated to integers (float32 arithmetic, C-style
truncation toward zero), the padded map is resized bilinearly to the box's inclusive size
`(x1 - x0 + 1) x (y1 - y0 + 1)` (OpenCV 4.2 INTER_LINEAR), thresholded with `> 0.5` and placed
at `[y0, x0]`, cut to the image. ppdet's `paste_mask` samples the unpadded map over the
continuous box with `grid_sample` and thresholds with `>=`.

The resize is separable, so each mask is `Wy @ padded @ Wx^T` with two sparse interpolation
matrices (two taps per row), which are built here for all detections at once.
"""
import paddle
import paddle.nn.functional as F
from ppdet.core.workspace import register
from ppdet.modeling.post_process import MaskPostProcess


def _taps(start, length, size, src_size):
    """[N, size, src_size] bilinear weights mapping src_size source cells onto image pixels
    start .. start + length - 1 (zero rows elsewhere); OpenCV 4.2 INTER_LINEAR coordinates.
    (Written in ops paddle2onnx converts: the ONNX export pastes with it too.)"""
    pixel = paddle.arange(size, dtype='float32').unsqueeze(0)             # [1, size]
    offset = pixel - start.unsqueeze(1)                                   # [N, size]
    inside = paddle.logical_and(offset >= 0, offset < length.unsqueeze(1))
    # OpenCV 4.2's source position (d + 0.5) * (1 / (dst / src)) - 0.5, computed in double and
    # rounded to float32, gives the taps of the float32 quotient of two integers,
    # ((2d + 1) src - dst) / (2 dst): integers this size are exact in float32, a float32 division
    # rounds correctly, and no such quotient lies within double's rounding error of a float32
    # rounding boundary; where the quotient is 0, double may give -5.6e-17, the same taps
    # (tests/test_deploy_legacy.py checks every dst up to 4000). So no float64 in the graph
    # (OpenVINO's CPU plugin would run it in float32).
    length = length.unsqueeze(1)
    pos = ((offset * 2 + 1) * src_size - length) / (length * 2)
    first = paddle.floor(pos)
    interior = paddle.logical_and(first >= 0, first < src_size - 1)
    frac = (pos - first) * interior.astype('float32')
    first = paddle.clip(first, 0, src_size - 1)
    second = paddle.clip(first + 1, 0, src_size - 1)
    cells = paddle.arange(src_size, dtype='float32')                      # one-hot by compare
    weights = ((cells == first.unsqueeze(-1)).astype('float32') * (1 - frac).unsqueeze(-1)
               + (cells == second.unsqueeze(-1)).astype('float32') * frac.unsqueeze(-1))
    return weights * inside.astype('float32').unsqueeze(-1)


def _trunc(value):
    """C-style truncation toward zero."""
    return paddle.where(value < 0, -paddle.floor(-value), paddle.floor(value))


def legacy_paste(masks, boxes, im_h, im_w, threshold=0.5):
    """masks [N, M, M] probabilities, boxes [N, 4] original coordinates -> [N, im_h, im_w] int32."""
    resolution = masks.shape[-1]
    scale = (resolution + 2.0) / resolution
    boxes = paddle.reshape(boxes, [-1, 4])     # a static graph may not know the width
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    half_w, half_h = (x2 - x1) * 0.5 * scale, (y2 - y1) * 0.5 * scale
    centre_x, centre_y = (x2 + x1) * 0.5, (y2 + y1) * 0.5
    left, right = _trunc(centre_x - half_w), _trunc(centre_x + half_w)
    top, bottom = _trunc(centre_y - half_h), _trunc(centre_y + half_h)
    width = paddle.clip(right - left + 1, min=1)
    height = paddle.clip(bottom - top + 1, min=1)
    padded = F.pad(masks.unsqueeze(1), [1, 1, 1, 1])[:, 0]                # [N, M+2, M+2]
    rows = _taps(top, height, im_h, resolution + 2)                        # [N, H, M+2]
    cols = _taps(left, width, im_w, resolution + 2)                        # [N, W, M+2]
    resized = paddle.matmul(rows, paddle.matmul(padded, cols, transpose_y=True))
    return (resized > threshold).astype('int32')


@register
class LegacyMaskPostProcess(MaskPostProcess):
    def __call__(self, mask_out, bboxes, bbox_num, origin_shape):
        origin_shape = paddle.cast(origin_shape, 'int32')
        max_h, max_w = paddle.max(origin_shape[:, 0]), paddle.max(origin_shape[:, 1])
        result = paddle.zeros([mask_out.shape[0], max_h, max_w], dtype='int32') - 1
        start = 0
        for i in range(paddle.shape(bbox_num)[0]):
            end = start + bbox_num[i]
            im_h, im_w = origin_shape[i, 0], origin_shape[i, 1]
            result[start:end, :im_h, :im_w] = legacy_paste(
                mask_out[start:end], bboxes[start:end, 2:], im_h, im_w,
                self.binary_thresh)
            start = end
        return result
