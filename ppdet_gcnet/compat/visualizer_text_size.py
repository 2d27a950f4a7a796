"""Result visualisation: labels measured with `ImageDraw.textsize`, which Pillow 10 removed.

Defect: `ppdet.utils.visualizer.draw_bbox` (PaddleDetection 2.6), which `Trainer.predict` uses
to draw every detection, sizes the label background with `ImageDraw.textsize`. Pillow 10.0
(2023-07) removed that method, so inference with visualisation raises AttributeError at the
first box drawn. (Not a Paddle change: a newer Pillow is what pip resolves today.)

Restores: PaddleDetection PR #8455 (2023-07; cherry-picked to release/2.6 as #8580) measures the
label with `ImageDraw.textbbox`, available since Pillow 8.0; `draw_bbox` again draws each box
(4-point or 8-point) scoring >= threshold with a filled label "<class> <score>" above it, one
random colour per class.

Fix: `visualizer.draw_bbox` is replaced by `draw_bbox` below (same contract);
`visualize_results` looks it up by module global, so it picks the replacement up.
"""
import numpy as np

from ._patching import replace

NAME = 'visualizer_text_size'


def _visualizer_module():
    from ppdet.utils import visualizer
    return visualizer


def _text_size(draw, text):
    left, top, right, bottom = draw.textbbox((0, 0), text)
    return right - left, bottom - top


def draw_bbox(image, im_id, catid2name, bboxes, threshold):
    """Draw the boxes of image `im_id` scoring >= threshold, each with its class and score."""
    from PIL import ImageDraw
    from ppdet.utils.colormap import colormap
    draw = ImageDraw.Draw(image)
    palette = colormap(rgb=True)[:40]
    class_colors = {}
    for det in np.array(bboxes):
        if det['image_id'] != im_id or det['score'] < threshold:
            continue
        catid, box = det['category_id'], det['bbox']
        if catid not in class_colors:
            class_colors[catid] = tuple(palette[np.random.randint(len(palette))])
        color = class_colors[catid]
        if len(box) == 4:  # x, y, w, h
            xmin, ymin, w, h = box
            xmax, ymax = xmin + w, ymin + h
            corners = [(xmin, ymin), (xmin, ymax), (xmax, ymax), (xmax, ymin)]
        elif len(box) == 8:  # rotated box: four corners
            corners = list(zip(box[0::2], box[1::2]))
            xmin, ymin = min(box[0::2]), min(box[1::2])
        else:
            _visualizer_module().logger.error('the shape of bbox must be [M, 4] or [M, 8]!')
            continue
        draw.line(corners + corners[:1], width=2, fill=color)
        text = '{} {:.2f}'.format(catid2name[catid], det['score'])
        tw, th = _text_size(draw, text)
        draw.rectangle([(xmin + 1, ymin - th), (xmin + tw + 1, ymin)], fill=color)
        draw.text((xmin + 1, ymin - th), text, fill=(255, 255, 255))
    return image


def probe():
    """Draw one box with the installed `draw_bbox`; True if it fails."""
    from PIL import Image
    image = Image.new('RGB', (32, 32))
    det = {'image_id': 0, 'category_id': 1, 'bbox': [4, 12, 10, 10], 'score': 0.9}
    try:
        _visualizer_module().draw_bbox(image, 0, {1: 'a'}, [det], 0.5)
    except AttributeError:
        return True
    return False


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    return [(_visualizer_module(), 'draw_bbox')]


def apply():
    return replace(_visualizer_module(), 'draw_bbox', draw_bbox, NAME)
