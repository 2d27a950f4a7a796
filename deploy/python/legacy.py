"""Deploy's side of the legacy-exact pipeline (configs/gcnet/legacy/, docs/weights.md
"Legacy-exact pipeline"), in NumPy, for every backend:

- `LegacyNormalizeImage`, `LegacyResize`: the legacy reader's preprocessing as the export's
  infer_cfg.yml lists it (normalise the full-size image, then resize the float image with
  OpenCV 4.2's bilinear arithmetic; the legacy scale rule; `im_shape` = scale x size, unrounded);
- `paste_masks_legacy`: the legacy mask paste of raw mask probabilities (`mask_output: raw`
  exports): the map padded by one zero pixel, its box enlarged by (M + 2) / M and truncated to
  integers, resized bilinearly (OpenCV 4.2) to the box's inclusive size, `> threshold`.

The model side computes the same in Paddle ops (ppdet_gcnet/legacy/: reader.py, mask_paste.py);
tests/test_deploy_legacy.py checks these equal it.
"""
import cv2
import numpy as np

from .errors import DeployError


class LegacyNormalizeImage:
    """x / 255 in float32, then (x - mean) / std each rounded to float32 from double."""

    def __init__(self, mean, std, is_scale=True, norm_type='mean_std'):
        if norm_type != 'mean_std':
            raise DeployError(f"LegacyNormalizeImage.norm_type: {norm_type!r}; allowed: mean_std")
        self.mean = np.asarray(mean, np.float64).reshape(1, 1, -1)
        self.std = np.asarray(std, np.float64).reshape(1, 1, -1)
        self.is_scale = is_scale

    def __call__(self, image, info):
        image = image.astype(np.float32)
        if self.is_scale:
            image = image / np.float32(255.0)
        image = (image - self.mean).astype(np.float32)
        return (image / self.std).astype(np.float32), info


def opencv42_linear_taps(src_size, dst_size, inv_scale):
    """For each of dst_size output positions: (index, weight) of its two source cells, as
    OpenCV 4.2's INTER_LINEAR computes them (float32 source positions from double, clamped at
    the borders)."""
    position = ((np.arange(dst_size, dtype=np.float64) + 0.5) * inv_scale
                - 0.5).astype(np.float32)
    low = np.floor(position)
    frac = position - low
    interior = (low >= 0) & (low < src_size - 1)
    frac = np.where(interior, frac, np.float32(0)).astype(np.float32)
    low = np.clip(low, 0, src_size - 1).astype(np.int64)
    high = np.minimum(low + 1, src_size - 1)
    return low, high, (np.float32(1) - frac).astype(np.float32), frac


class LegacyResize:
    """Keep-ratio resize: scale = short target / short side, unless the long side would round
    above the long target, then long target / long side. interp 1 on a float image: OpenCV 4.2
    bilinear (horizontal pass, then vertical); otherwise cv2.resize."""

    def __init__(self, target_size, interp=1, keep_ratio=True):
        if isinstance(target_size, int):
            target_size = [target_size, target_size]
        if len(target_size) != 2 or min(target_size) <= 0:
            raise DeployError(f"LegacyResize.target_size: {target_size!r} must be two positive "
                              "sizes")
        self.short_target, self.long_target = min(target_size), max(target_size)
        self.interp = int(interp)

    def scale(self, height, width):
        short, long_ = min(height, width), max(height, width)
        scale = float(self.short_target) / float(short)
        if np.round(scale * long_) > self.long_target:
            scale = float(self.long_target) / float(long_)
        return scale

    def __call__(self, image, info):
        height, width = image.shape[:2]
        scale = self.scale(height, width)
        out_h, out_w = int(round(height * scale)), int(round(width * scale))
        if self.interp == 1 and image.dtype == np.float32 and image.ndim == 3:
            x_low, x_high, x_w0, x_w1 = opencv42_linear_taps(width, out_w, 1.0 / scale)
            y_low, y_high, y_w0, y_w1 = opencv42_linear_taps(height, out_h, 1.0 / scale)
            rows = (np.take(image, x_low, axis=1) * x_w0[None, :, None]
                    + np.take(image, x_high, axis=1) * x_w1[None, :, None])
            image = (np.take(rows, y_low, axis=0) * y_w0[:, None, None]
                     + np.take(rows, y_high, axis=0) * y_w1[:, None, None])
        else:
            image = cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=self.interp)
        info['im_shape'] = np.array([scale * float(height), scale * float(width)], np.float32)
        info['scale_factor'] = (np.asarray(info['scale_factor'], np.float32)
                                * np.float32(scale)).astype(np.float32)
        return image.astype(np.float32, copy=False), info


def _enlarged_box(box, resolution):
    """The legacy integer box (float32 arithmetic, truncation toward zero): (left, top,
    width, height)."""
    x1, y1, x2, y2 = (np.float32(v) for v in box)
    scale = np.float32((resolution + 2.0) / resolution)
    half_w = (x2 - x1) * np.float32(0.5) * scale
    half_h = (y2 - y1) * np.float32(0.5) * scale
    centre_x, centre_y = (x2 + x1) * np.float32(0.5), (y2 + y1) * np.float32(0.5)
    left, right = np.trunc(centre_x - half_w), np.trunc(centre_x + half_w)
    top, bottom = np.trunc(centre_y - half_h), np.trunc(centre_y + half_h)
    return int(left), int(top), max(int(right - left) + 1, 1), max(int(bottom - top) + 1, 1)


def paste_masks_legacy(probabilities, boxes, height, width, threshold=0.5):
    """[K, M, M] probabilities, boxes [K, 4] in original pixels -> binary uint8
    [K, height, width] (only each box's pixels are computed)."""
    out = np.zeros((len(probabilities), height, width), np.uint8)
    for i, (prob, box) in enumerate(zip(probabilities, boxes)):
        resolution = prob.shape[-1]
        padded = np.pad(prob.astype(np.float32), 1)                       # [M + 2, M + 2]
        left, top, box_w, box_h = _enlarged_box(box, resolution)
        # the image pixels the box covers, and where they are in the box
        x0, x1 = max(left, 0), min(left + box_w, width)
        y0, y1 = max(top, 0), min(top + box_h, height)
        if x1 <= x0 or y1 <= y0:
            continue
        cols = opencv42_linear_taps(resolution + 2, box_w, 1.0 / (box_w / (resolution + 2)))
        rows = opencv42_linear_taps(resolution + 2, box_h, 1.0 / (box_h / (resolution + 2)))
        cx = slice(x0 - left, x1 - left)
        cy = slice(y0 - top, y1 - top)
        across = (padded[:, cols[0][cx]] * cols[2][cx][None, :]
                  + padded[:, cols[1][cx]] * cols[3][cx][None, :])
        region = (across[rows[0][cy]] * rows[2][cy][:, None]
                  + across[rows[1][cy]] * rows[3][cy][:, None])
        out[i, y0:y1, x0:x1] = region > threshold
    return out
