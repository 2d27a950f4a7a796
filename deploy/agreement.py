"""How closely two detectors' outputs on one image agree (exported vs dygraph, bf16 vs fp32)."""
import numpy as np


def box_iou(box, boxes):
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iou = inter / np.maximum(area + areas - inter, 1e-9)
    # Boxes clipped to zero area have IoU 0 with everything, themselves included.
    return np.where((boxes == box).all(axis=1), 1.0, iou)


def agreement(ref_boxes, ref_masks, boxes, masks):
    """Match each reference detection ([class, score, x1, y1, x2, y2]) to the same-class box with
    the highest IoU. Returns matched fraction (IoU >= 0.9), worst box corner error and score error
    over matched pairs, and for their masks (binary, or probabilities thresholded at 0.5) the mean
    IoU and, for probabilities, the worst absolute difference."""
    matched, box_err, score_err, mask_iou, prob_err = 0, 0.0, 0.0, [], None
    for i, ref in enumerate(ref_boxes):
        same = np.where(boxes[:, 0] == ref[0])[0]
        if not len(same):
            continue
        ious = box_iou(ref[2:], boxes[same, 2:])
        j = same[int(np.argmax(ious))]
        if ious.max() < 0.9:
            continue
        matched += 1
        box_err = max(box_err, float(np.abs(boxes[j, 2:] - ref[2:]).max()))
        score_err = max(score_err, float(abs(boxes[j, 1] - ref[1])))
        if ref_masks is not None and masks is not None:
            a, b = ref_masks[i], masks[j]
            if np.issubdtype(a.dtype, np.floating):
                prob_err = max(prob_err or 0.0, float(np.abs(a - b).max()))
                a, b = a >= 0.5, b >= 0.5
            a, b = a.astype(bool), b.astype(bool)
            union = (a | b).sum()
            mask_iou.append(float((a & b).sum() / union) if union else 1.0)
    return {'matched_fraction': round(matched / max(len(ref_boxes), 1), 4),
            'max_box_error_px': round(box_err, 4), 'max_score_error': round(score_err, 6),
            'mean_mask_iou': round(float(np.mean(mask_iou)), 5) if mask_iou else None,
            'max_mask_prob_error': None if prob_err is None else round(prob_err, 6)}
