"""Draw detections (mask tint, box, 'label score') on an RGB image and save it."""
import os

import cv2
import numpy as np


def class_color(class_id):
    """A fixed, well-spread colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_detections(image_rgb, detections, label_list, mask_alpha=0.45):
    canvas = image_rgb.copy()
    masks = detections['masks']
    for i, (cls, score, box) in enumerate(zip(detections['class_ids'], detections['scores'],
                                              detections['boxes'])):
        color = class_color(int(cls))
        if masks is not None:
            region = masks[i].astype(bool)
            canvas[region] = (canvas[region] * (1 - mask_alpha)
                              + np.array(color) * mask_alpha).astype(np.uint8)
        x1, y1, x2, y2 = [int(round(v)) for v in box]
        thickness = max(1, round(min(canvas.shape[:2]) / 400))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        label = label_list[cls] if 0 <= cls < len(label_list) else str(int(cls))
        cv2.putText(canvas, f'{label} {score:.2f}', (x1, max(y1 - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, color, thickness)
    return canvas


def output_image_path(output_dir, image_path):
    stem, ext = os.path.splitext(os.path.basename(image_path))
    if ext.lower() not in ('.jpg', '.jpeg', '.png', '.bmp'):
        ext = '.png'
    return os.path.join(output_dir, stem + ext)


def save_visualization(path, image_rgb):
    if not cv2.imwrite(path, np.ascontiguousarray(image_rgb[..., ::-1])):
        raise OSError(f"{path}: could not write the visualised image")
    return path
