"""Legacy test-time preprocessing (`static/configs/mask_fpn_reader.yml`): decode to RGB, normalise
the full-size image, then resize it (bilinear on the normalised float image), pad to 32.

Two operators differ from ppdet's and are registered here; the order (normalise before resize)
is set in configs/gcnet/legacy/_base_/legacy_reader.yml.

The legacy reader resized with OpenCV 4.2 (the version Paddle 1.8 pinned). OpenCV >= 4.5
computes float bilinear resizes differently (up to 1.5e-5 apart on a normalised image), so the
resize is done here the OpenCV 4.2 way in NumPy: float32 source coordinates
`(d + 0.5) / scale - 0.5`, clamped at the borders, horizontal pass then vertical pass.
"""
import numpy as np
import ppdet.data.transform as transform_namespace
from ppdet.data.transform.operators import NormalizeImage, Resize, register_op


def register_reader_op(cls):
    """ppdet's `register_op`, plus the name in `ppdet.data.transform`, where the readers look
    operators up (that namespace is filled once, when ppdet is imported)."""
    cls = register_op(cls)
    setattr(transform_namespace, cls.__name__, cls)
    return cls


@register_reader_op
class LegacyNormalizeImage(NormalizeImage):
    """`x / 255` then `(x - mean) / std` in float32, as the legacy operator computed it (ppdet
    multiplies by 1/255, which can differ in the last bit)."""

    def apply(self, sample, context=None):
        im = sample['image'].astype(np.float32, copy=False) / 255.0
        im -= np.array(self.mean)[np.newaxis, np.newaxis, :]
        im /= np.array(self.std)[np.newaxis, np.newaxis, :]
        sample['image'] = im
        return sample


def _linear_taps(src_size, dst_size, inv_scale):
    """Per output index: the two source indices and their weights (OpenCV 4.2 INTER_LINEAR)."""
    pos = ((np.arange(dst_size, dtype=np.float64) + 0.5) * inv_scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    frac = pos - first.astype(np.float32)
    before, after = first < 0, first >= src_size - 1
    frac[before | after] = 0
    first[before] = 0
    first[after] = src_size - 1
    second = np.minimum(first + 1, src_size - 1)
    return first, second, np.float32(1) - frac, frac


def legacy_bilinear_resize(image, scale):
    """[H, W, C] float32 image resized by `scale` (output size rounded as cv2 does)."""
    height, width = image.shape[:2]
    out_h, out_w = int(round(height * scale)), int(round(width * scale))
    x0, x1, wx0, wx1 = _linear_taps(width, out_w, 1.0 / scale)
    y0, y1, wy0, wy1 = _linear_taps(height, out_h, 1.0 / scale)
    rows = image[:, x0] * wx0[None, :, None] + image[:, x1] * wx1[None, :, None]
    return rows[y0] * wy0[:, None, None] + rows[y1] * wy1[:, None, None]


@register_reader_op
class LegacyResize(Resize):
    """Keep-ratio resize with the legacy scale: `target / short side`, unless the long side
    would then round to more than `max_size`, in which case `max_size / long side` (ppdet takes
    the minimum of the two ratios, which differs when the long side lands within half a pixel
    above max_size). `target_size` is [short, max_size]."""

    def __init__(self, target_size, interp=1):
        super().__init__(target_size, keep_ratio=True, interp=interp)

    def legacy_scale(self, height, width):
        short, long_ = min(height, width), max(height, width)
        target, max_size = min(self.target_size), max(self.target_size)
        scale = float(target) / float(short)
        if np.round(scale * long_) > max_size:
            scale = float(max_size) / float(long_)
        return scale

    def apply_image(self, image, scale):
        if self.interp == 1 and image.ndim == 3 and image.dtype == np.float32 \
                and scale[0] == scale[1]:
            return legacy_bilinear_resize(image, scale[0])
        return super().apply_image(image, scale)

    def apply(self, sample, context=None):
        im = sample['image']
        height, width = im.shape[:2]
        scale = self.legacy_scale(height, width)
        sample['image'] = self.apply_image(im, [scale, scale]).astype(np.float32)
        resize_h, resize_w = scale * float(height), scale * float(width)
        sample['im_shape'] = np.asarray([resize_h, resize_w], dtype=np.float32)
        previous = sample.get('scale_factor', np.ones(2, np.float32))
        sample['scale_factor'] = np.asarray([previous[0] * scale, previous[1] * scale],
                                            dtype=np.float32)
        if 'gt_bbox' in sample and len(sample['gt_bbox']) > 0:
            sample['gt_bbox'] = self.apply_bbox(sample['gt_bbox'], [scale, scale],
                                                [resize_w, resize_h])
        if 'gt_poly' in sample and len(sample['gt_poly']) > 0:
            sample['gt_poly'] = self.apply_segm(sample['gt_poly'], (height, width),
                                                [scale, scale])
        return sample
