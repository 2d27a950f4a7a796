"""A small, deterministic COCO-format instance-segmentation dataset of coloured shapes.

Every object is drawn from its own polygon and objects never overlap, so the polygon written to
the annotation file is exactly the object's visible mask. Same seed, same files.
"""
import json
import os
import shutil
import tempfile

import cv2
import numpy as np

SHAPE_CLASSES = ('circle', 'square', 'triangle')


def _regular_polygon(center, radius, sides, angle):
    theta = angle + np.arange(sides) * 2 * np.pi / sides
    return np.stack([center[0] + radius * np.cos(theta), center[1] + radius * np.sin(theta)], 1)


def _shape_polygon(kind, center, radius, angle):
    if kind == 'circle':
        return _regular_polygon(center, radius, 32, 0.0)
    if kind == 'square':
        return _regular_polygon(center, radius, 4, angle)
    return _regular_polygon(center, radius, 3, angle)


def _polygon_area(points):
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _draw_image(rng, width, height, max_objects):
    background = rng.randint(0, 256, size=3)
    image = np.empty((height, width, 3), np.float32)
    image[:] = background
    image += rng.normal(0, 8, size=image.shape)  # texture, so the background is not flat
    objects, placed = [], []
    for _ in range(rng.randint(1, max_objects + 1)):
        for _attempt in range(20):
            radius = rng.uniform(0.08, 0.22) * min(width, height)
            center = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
            if all(np.hypot(center[0] - c[0], center[1] - c[1]) > radius + r + 2
                   for c, r in placed):
                break
        else:
            continue
        label = rng.randint(len(SHAPE_CLASSES))
        polygon = _shape_polygon(SHAPE_CLASSES[label], center, radius, rng.uniform(0, np.pi))
        color = rng.randint(0, 256, size=3)
        while np.abs(color - background).sum() < 150:  # keep shapes visible
            color = rng.randint(0, 256, size=3)
        cv2.fillPoly(image, [np.round(polygon).astype(np.int32)], color.tolist())
        placed.append((center, radius))
        objects.append((label, polygon))
    return np.clip(image, 0, 255).astype(np.uint8), objects


def _write_split(root, split, rngs, width, height, max_objects, first_ann_id):
    """`rngs`: one random generator per image, in file order."""
    image_dir = os.path.join(root, split)
    os.makedirs(image_dir)
    images, annotations = [], []
    ann_id = first_ann_id
    for index, rng in enumerate(rngs):
        image, objects = _draw_image(rng, width, height, max_objects)
        file_name = f'{split}_{index:05d}.jpg'
        cv2.imwrite(os.path.join(image_dir, file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        image_id = index + 1
        images.append({'id': image_id, 'file_name': file_name, 'width': width, 'height': height})
        for label, polygon in objects:
            polygon = np.round(polygon, 2)
            x0, y0 = polygon.min(0)
            x1, y1 = polygon.max(0)
            annotations.append({
                'id': ann_id, 'image_id': image_id, 'category_id': label + 1, 'iscrowd': 0,
                'bbox': [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                'area': _polygon_area(polygon),
                'segmentation': [polygon.reshape(-1).tolist()],
            })
            ann_id += 1
    categories = [{'id': i + 1, 'name': n, 'supercategory': 'shape'}
                  for i, n in enumerate(SHAPE_CLASSES)]
    with open(os.path.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)
    return ann_id


# The first this many training images, then the validation images, come from one random stream
# (the dataset as first published); further training images come from a second stream, so asking
# for more training images never changes the validation set.
BASE_TRAIN_IMAGES = 64


def make_shapes_dataset(root, num_train=64, num_val=16, width=320, height=320, max_objects=4,
                        seed=0):
    """Write `root/{train,val}/*.jpg` and `root/annotations/instances_{train,val}.json`.

    The validation images depend on `seed`, `num_val`, the size and `max_objects`, never on
    `num_train` beyond BASE_TRAIN_IMAGES.

    The dataset is built in a temporary sibling folder and moved into place at the end, so an
    interrupted run never leaves a half-written dataset at `root`. An existing `root` is replaced.
    Returns `root`.
    """
    for key, value in (('num_train', num_train), ('num_val', num_val), ('width', width),
                       ('height', height), ('max_objects', max_objects)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"make_shapes_dataset: {key}={value!r} must be a positive integer")
    if min(width, height) < 32:
        raise ValueError(f"make_shapes_dataset: {width}x{height} is too small; use >= 32x32")
    root = os.path.abspath(root)
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.shapes-', dir=parent)
    try:
        os.makedirs(os.path.join(staging, 'annotations'))
        rng = np.random.RandomState(seed)
        extra_rng = np.random.RandomState([seed, 1])
        base = min(num_train, BASE_TRAIN_IMAGES)
        train_rngs = [rng] * base + [extra_rng] * (num_train - base)
        next_id = _write_split(staging, 'train', train_rngs, width, height, max_objects, 1)
        _write_split(staging, 'val', [rng] * num_val, width, height, max_objects, next_id)
        if os.path.isdir(root):
            shutil.rmtree(root)
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root
