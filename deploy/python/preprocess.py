"""The `Preprocess` list of an exported model's infer_cfg.yml, applied to RGB uint8 images.

Each op takes and returns `(image, info)`; `info` carries `im_shape` (the resized size, before any
padding) and `scale_factor` ([scale_y, scale_x]) exactly as PaddleDetection's readers define them,
so the exported graph maps boxes back to the original image as the dygraph model would.
"""
import cv2
import numpy as np

from .errors import DeployError
from .legacy import LegacyNormalizeImage, LegacyResize


class Resize:
    def __init__(self, target_size, keep_ratio=True, interp=cv2.INTER_LINEAR):
        if isinstance(target_size, int):
            target_size = [target_size, target_size]
        if len(target_size) != 2 or min(target_size) <= 0:
            raise DeployError(f"Resize.target_size: {target_size!r} must be two positive sizes")
        self.target_size = [int(s) for s in target_size]
        self.keep_ratio = keep_ratio
        self.interp = int(interp)

    def scales(self, height, width):
        if not self.keep_ratio:
            return self.target_size[0] / height, self.target_size[1] / width
        # Short side to min(target), long side at most max(target): PaddleDetection's rule.
        # (the rounding matches PaddleDetection's Resize, so sizes agree at the boundary).
        short_target, long_target = min(self.target_size), max(self.target_size)
        scale = short_target / min(height, width)
        if np.round(scale * max(height, width)) > long_target:
            scale = long_target / max(height, width)
        return scale, scale

    def __call__(self, image, info):
        height, width = image.shape[:2]
        scale_y, scale_x = self.scales(height, width)
        image = cv2.resize(image, None, None, fx=scale_x, fy=scale_y, interpolation=self.interp)
        info['im_shape'] = np.array(image.shape[:2], np.float32)
        info['scale_factor'] = np.array([scale_y, scale_x], np.float32)
        return image, info


class NormalizeImage:
    def __init__(self, mean, std, is_scale=True, norm_type='mean_std'):
        if norm_type not in ('mean_std', 'none'):
            raise DeployError(f"NormalizeImage.norm_type: {norm_type!r} is not supported; "
                              "allowed: mean_std, none")
        self.mean = np.array(mean, np.float32)[None, None, :]
        self.std = np.array(std, np.float32)[None, None, :]
        self.is_scale = is_scale
        self.norm_type = norm_type

    def __call__(self, image, info):
        image = image.astype(np.float32, copy=False)
        if self.is_scale:
            image = image * np.float32(1.0 / 255.0)
        if self.norm_type == 'mean_std':
            image = (image - self.mean) / self.std
        return image, info


class Permute:
    def __call__(self, image, info):
        return np.ascontiguousarray(image.transpose((2, 0, 1))), info


class PadStride:
    """Zero-pad the bottom/right so height and width are multiples of `stride` (FPN needs it)."""

    def __init__(self, stride=0):
        self.stride = int(stride)

    def __call__(self, image, info):
        if self.stride <= 0:
            return image, info
        channels, height, width = image.shape
        padded_h = int(np.ceil(height / self.stride) * self.stride)
        padded_w = int(np.ceil(width / self.stride) * self.stride)
        padded = np.zeros((channels, padded_h, padded_w), np.float32)
        padded[:, :height, :width] = image
        return padded, info


OPS = {'Resize': Resize, 'NormalizeImage': NormalizeImage, 'Permute': Permute,
       'PadStride': PadStride,
       # the legacy-exact pipeline's reader (configs/gcnet/legacy/)
       'LegacyNormalizeImage': LegacyNormalizeImage, 'LegacyResize': LegacyResize}


def build_preprocess(op_configs):
    """[{'type': 'Resize', ...}, ...] from infer_cfg.yml -> list of callables."""
    ops = []
    for config in op_configs:
        config = dict(config)
        name = config.pop('type', None)
        if name not in OPS:
            raise DeployError(f"infer_cfg.yml Preprocess: op {name!r} is not supported; "
                              f"supported: {', '.join(OPS)}")
        try:
            ops.append(OPS[name](**config))
        except TypeError as e:
            raise DeployError(f"infer_cfg.yml Preprocess {name}: {e}")
    return ops


def preprocess_image(image_rgb, ops):
    """uint8 RGB [H, W, 3] -> (float32 CHW image, info with im_shape and scale_factor)."""
    height, width = image_rgb.shape[:2]
    info = {'im_shape': np.array([height, width], np.float32),
            'scale_factor': np.array([1.0, 1.0], np.float32),
            'origin_shape': (height, width)}
    image = image_rgb
    for op in ops:
        image, info = op(image, info)
    return image, info


def stack_batch(images):
    """CHW images of different sizes -> one zero-padded NCHW batch."""
    height = max(im.shape[1] for im in images)
    width = max(im.shape[2] for im in images)
    batch = np.zeros((len(images), images[0].shape[0], height, width), np.float32)
    for i, im in enumerate(images):
        batch[i, :, :im.shape[1], :im.shape[2]] = im
    return batch
