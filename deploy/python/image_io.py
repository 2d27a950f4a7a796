"""Decode any image file into an 8-bit, 3-channel RGB array, or fail with a one-line reason.

Handled: grayscale (repeated to 3 channels), grey + alpha and RGBA (alpha composited on white, so
transparent regions do not turn black), 16-bit and float images (scaled to 0..255 by their type's
range), palette/PNG/JPEG/BMP/TIFF/WebP through OpenCV. Refused with DeployError: missing, empty or
undecodable files, and images larger than MAX_PIXELS (a decompression bomb would otherwise hang
or exhaust memory).
"""
import os

import cv2
import numpy as np

from .errors import DeployError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
MAX_PIXELS = 20000 * 20000
# OpenCV refuses images over its own pixel limit before decoding; keep it in step with ours.
os.environ.setdefault('OPENCV_IO_MAX_IMAGE_PIXELS', str(MAX_PIXELS))


def is_image_path(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _to_uint8(image, path):
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        finite = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(finite * scale + 0.5, 0, 255).astype(np.uint8)
    raise DeployError(f"{path}: pixel type {image.dtype} is not supported; "
                      "use 8-bit, 16-bit or float images")


def _composite_on_white(color, alpha):
    alpha = alpha.astype(np.float32)[..., None] / 255.0
    return (color.astype(np.float32) * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)


def decoded_to_rgb(image, path='<image>'):
    """OpenCV's IMREAD_UNCHANGED result (BGR order) -> uint8 RGB [H, W, 3]."""
    if image is None or image.size == 0:
        raise DeployError(f"{path}: not a decodable image (corrupt, truncated or not an image)")
    image = _to_uint8(image, path)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 2:  # grey + alpha
        grey = _composite_on_white(image[..., 0], image[..., 1])
        return np.repeat(grey[..., None], 3, axis=2)
    if channels == 4:
        image = _composite_on_white(image[..., :3], image[..., 3])
    elif channels != 3:
        raise DeployError(f"{path}: {channels} channels are not supported; use 1, 2, 3 or 4")
    return np.ascontiguousarray(image[..., ::-1])


def read_image_rgb(path):
    """Read `path` and return uint8 RGB [H, W, 3]; DeployError names the file and the reason."""
    if not os.path.isfile(path):
        raise DeployError(f"{path}: no such image file")
    if os.path.getsize(path) == 0:
        raise DeployError(f"{path}: file is empty")
    data = np.fromfile(path, dtype=np.uint8)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # e.g. over OpenCV's pixel limit
        raise DeployError(f"{path}: OpenCV cannot decode it ({str(e).strip().splitlines()[-1]})")
    if image is not None and image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise DeployError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels is over the "
                          f"{MAX_PIXELS} pixel limit")
    return decoded_to_rgb(image, path)


def list_images(image_file=None, image_dir=None):
    """Files to run on: `image_file`, or the image files of `image_dir` (sorted), with the
    non-image files of the directory returned separately so the caller can report them."""
    if image_file:
        return [image_file], []
    if not image_dir or not os.path.isdir(image_dir):
        raise DeployError(f"--image_dir {image_dir!r}: no such directory")
    names = sorted(os.listdir(image_dir))
    files = [os.path.join(image_dir, n) for n in names if os.path.isfile(os.path.join(image_dir, n))]
    images = [f for f in files if is_image_path(f)]
    skipped = [f for f in files if not is_image_path(f)]
    if not images:
        raise DeployError(f"--image_dir {image_dir}: no image files "
                          f"({', '.join(IMAGE_EXTENSIONS)})")
    return images, skipped
