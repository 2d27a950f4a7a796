"""Exported-model outputs -> per-image detections (boxes in original pixels, binary masks)."""
import cv2
import numpy as np


def split_per_image(outputs, infos, threshold, to_original):
    """outputs: DetectorOutputs of one batch; infos: preprocess infos of its images.

    `to_original[i]` is None when the graph already mapped image i to original pixels, else the
    (scale_y, scale_x) to divide boxes by and masks to be resized for (see infer.plan_inputs).
    Returns a list of dicts: class_ids, scores, boxes [K, 4] (x1, y1, x2, y2), masks [K, H, W] or None.
    """
    boxes, counts, masks = outputs['boxes'], outputs['boxes_num'], outputs['masks']
    if len(counts) != len(infos):
        raise ValueError(f"model returned counts for {len(counts)} images, fed {len(infos)}")
    detections, start = [], 0
    for info, count, rescale in zip(infos, counts, to_original):
        rows = slice(start, start + int(count))
        start += int(count)
        image_boxes = boxes[rows]
        # An image without detections comes back as one row with class -1.
        keep = (image_boxes[:, 0] >= 0) & (image_boxes[:, 1] >= threshold)
        image_boxes = image_boxes[keep]
        image_masks = masks[rows][keep] if masks is not None else None
        height, width = info['origin_shape']
        xyxy = image_boxes[:, 2:6].astype(np.float32)
        if rescale is not None:
            scale_y, scale_x = rescale
            xyxy = xyxy / np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
            xyxy = np.clip(xyxy, 0, [width, height, width, height])
            if image_masks is not None:
                image_masks = resize_masks(image_masks, height, width)
        elif image_masks is not None:
            image_masks = image_masks[:, :height, :width]
        detections.append({
            'class_ids': image_boxes[:, 0].astype(np.int64),
            'scores': image_boxes[:, 1].astype(np.float32),
            'boxes': xyxy,
            'masks': None if image_masks is None else image_masks.astype(np.uint8),
        })
    return detections


def resize_masks(masks, height, width):
    """Binary masks -> (height, width): bilinear on 0/1 then >= 0.5, i.e. pixel-centre aligned
    (OpenCV's INTER_NEAREST is not, and shifts masks by up to one source pixel)."""
    out = np.zeros((len(masks), height, width), np.uint8)
    for i, mask in enumerate(masks):
        resized = cv2.resize(mask.astype(np.float32), (width, height),
                             interpolation=cv2.INTER_LINEAR)
        out[i] = resized >= 0.5
    return out


def to_json_records(detections, label_list):
    """One image's detections -> JSON-ready list (masks as COCO RLE)."""
    records = []
    rles = _encode_rle(detections['masks']) if detections['masks'] is not None else None
    for i, (cls, score, box) in enumerate(zip(detections['class_ids'], detections['scores'],
                                              detections['boxes'])):
        record = {
            'class_id': int(cls),
            'label': label_list[cls] if 0 <= cls < len(label_list) else str(int(cls)),
            'score': round(float(score), 5),
            'bbox_xyxy': [round(float(v), 2) for v in box],
        }
        if rles is not None:
            record['segmentation'] = rles[i]
        records.append(record)
    return records


def _encode_rle(masks):
    from pycocotools import mask as mask_util  # a PaddleDetection dependency
    encoded = []
    for mask in masks:
        rle = mask_util.encode(np.asfortranarray(mask))
        encoded.append({'size': [int(s) for s in rle['size']],
                        'counts': rle['counts'].decode('ascii')})
    return encoded
