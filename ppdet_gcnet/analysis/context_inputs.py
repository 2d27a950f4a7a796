"""Finding and checking the images a visualisation run reads, before any model is built."""
import os

import cv2
import numpy as np

# The extensions ppdet's ImageFolder accepts.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


class InputError(ValueError):
    """A path given on the command line that cannot be used; the message names it."""


def decode_rgb(path):
    """Decode an image the way ppdet's `Decode` does (OpenCV, then BGR -> RGB); None if unreadable."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_image(path, option):
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        raise InputError(f"{option}: {path!r} is not an image file; "
                         f"expected one of {', '.join(IMAGE_EXTENSIONS)}")
    if decode_rgb(path) is None:
        raise InputError(f"{option}: {path!r} cannot be decoded as an image "
                         f"(empty, truncated or not really {os.path.splitext(path)[1]})")
    return os.path.abspath(path)


def collect_images(infer_img=None, infer_dir=None):
    """Absolute paths of the images to read: `infer_img` if given, else every image in `infer_dir`.

    Raises InputError for a missing path, a directory given as an image, a file that is not an
    image, or a directory without images.
    """
    if infer_img:
        if not os.path.exists(infer_img):
            raise InputError(f"--infer_img: {infer_img!r} does not exist")
        if os.path.isdir(infer_img):
            raise InputError(f"--infer_img: {infer_img!r} is a directory; use --infer_dir")
        return [_check_image(infer_img, '--infer_img')]
    if infer_dir:
        if not os.path.exists(infer_dir):
            raise InputError(f"--infer_dir: {infer_dir!r} does not exist")
        if not os.path.isdir(infer_dir):
            raise InputError(f"--infer_dir: {infer_dir!r} is not a directory; use --infer_img")
        names = sorted(name for name in os.listdir(infer_dir)
                       if name.lower().endswith(IMAGE_EXTENSIONS)
                       and os.path.isfile(os.path.join(infer_dir, name)))
        if not names:
            raise InputError(f"--infer_dir: {infer_dir!r} contains no images "
                             f"({', '.join(IMAGE_EXTENSIONS)})")
        return [_check_image(os.path.join(infer_dir, name), '--infer_dir') for name in names]
    raise InputError("no input: give --infer_img IMAGE or --infer_dir DIR")


def check_output_dir(output_dir):
    """Refuse an empty value or a path that exists and is not a directory. Nothing is created
    here: the folders appear when the first file is written, so a run that fails later on a bad
    config or weights path leaves no empty output directory behind."""
    if not output_dir:
        raise InputError("--output_dir: an output directory is required")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise InputError(f"--output_dir: {output_dir!r} exists and is not a directory")
    return output_dir
