"""Exported-model outputs -> per-image detections (boxes in original pixels, binary masks)."""
import cv2
import numpy as np

from .legacy import paste_masks_legacy


def split_per_image(outputs, infos, threshold, to_original, mask_threshold=0.5,
                    legacy_paste=False):
    """outputs: DetectorOutputs of one batch; infos: preprocess infos of its images.

    `to_original[i]` is None when the graph already mapped image i to original pixels, else the
    (scale_y, scale_x) to divide boxes by and pasted masks to be resized for (see
    infer.plan_inputs). Masks come either pasted by the graph (int [N, H, W]) or as the mask
    head's probabilities (float [N, M, M], `mask_output: raw` exports), pasted here into the kept
    boxes only. Returns per image: class_ids, scores, boxes [K, 4] (x1, y1, x2, y2 in original
    pixels), masks uint8 [K, H, W] or None. `legacy_paste`: raw masks are pasted the legacy
    way (legacy-exact pipeline exports).
    """
    boxes, counts, masks = outputs['boxes'], outputs['boxes_num'], outputs['masks']
    if len(counts) != len(infos):
        raise ValueError(f"model returned counts for {len(counts)} images, fed {len(infos)}")
    raw = masks is not None and np.issubdtype(masks.dtype, np.floating)
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
            if raw:
                paste = paste_masks_legacy if legacy_paste else paste_masks
                image_masks = paste(image_masks, xyxy, height, width, mask_threshold)
            elif rescale is not None:
                image_masks = resize_masks(image_masks, height, width)
            else:
                image_masks = image_masks[:, :height, :width]
        detections.append({
            'class_ids': image_boxes[:, 0].astype(np.int64),
            'scores': image_boxes[:, 1].astype(np.float32),
            'boxes': xyxy,
            'masks': None if image_masks is None else image_masks.astype(np.uint8, copy=False),
        })
    return detections


def paste_masks(probabilities, boxes, height, width, threshold=0.5):
    """[K, M, M] mask probabilities, each covering its box -> binary uint8 [K, height, width].

    Same sampling as PaddleDetection's `paste_mask` (grid_sample, align_corners=False, zeros
    outside): image pixel centre x + 0.5 reads mask coordinate (x + 0.5 - x1) * M / (x2 - x1) - 0.5,
    bilinear in float. Only the box's pixels are computed: outside it every sample is below 0.5.
    """
    out = np.zeros((len(probabilities), height, width), np.uint8)
    for i, (prob, (x1, y1, x2, y2)) in enumerate(zip(probabilities, boxes)):
        if x2 - x1 <= 1e-3 or y2 - y1 <= 1e-3:
            continue
        left, top = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        right, bottom = min(int(np.ceil(x2)), width), min(int(np.ceil(y2)), height)
        if right <= left or bottom <= top:
            continue
        size_y, size_x = prob.shape
        u = (np.arange(left, right) + 0.5 - x1) * (size_x / (x2 - x1)) - 0.5
        v = (np.arange(top, bottom) + 0.5 - y1) * (size_y / (y2 - y1)) - 0.5
        region = _bilinear_zero_padded(prob.astype(np.float32), v, u)
        out[i, top:bottom, left:right] = region >= threshold
    return out


def resize_masks(masks, height, width):
    """Binary masks -> (height, width): bilinear on 0/1 then >= 0.5, i.e. pixel-centre aligned
    (OpenCV's INTER_NEAREST is not, and shifts masks by up to one source pixel)."""
    out = np.zeros((len(masks), height, width), np.uint8)
    for i, mask in enumerate(masks):
        resized = cv2.resize(mask.astype(np.float32), (width, height),
                             interpolation=cv2.INTER_LINEAR)
        out[i] = resized >= 0.5
    return out


def _bilinear_zero_padded(image, rows, cols):
    """image sampled at every (row, col) of the given coordinate vectors, bilinear, zero outside
    (float arithmetic, as grid_sample; OpenCV's warps quantise weights to 1/32)."""
    padded = np.pad(image, 1)  # index 0 and -1 are the zero border
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    wr = (rows - r0).astype(np.float32)[:, None]
    wc = (cols - c0).astype(np.float32)[None, :]
    r0 = np.clip(r0 + 1, 0, padded.shape[0] - 1)
    r1 = np.clip(r0 + 1, 0, padded.shape[0] - 1)
    c0 = np.clip(c0 + 1, 0, padded.shape[1] - 1)
    c1 = np.clip(c0 + 1, 0, padded.shape[1] - 1)
    top = padded[r0][:, c0] * (1 - wc) + padded[r0][:, c1] * wc
    bottom = padded[r1][:, c0] * (1 - wc) + padded[r1][:, c1] * wc
    return top * (1 - wr) + bottom * wr


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
