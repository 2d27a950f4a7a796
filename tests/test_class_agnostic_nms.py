"""ClassAgnosticNMS against a NumPy greedy NMS over all classes, and its ONNX form against it."""
import numpy as np
import paddle
import pytest

import ppdet_gcnet  # noqa: F401  (registers ClassAgnosticNMS)
from ppdet_gcnet.modeling import ClassAgnosticNMS

pytestmark = pytest.mark.ppdet  # runs PaddleDetection itself: in both test legs

NUM_CLASSES = 3
SCORE_THRESHOLD = 0.05
IOU_THRESHOLD = 0.5


def iou(box, boxes):
    """Continuous IoU of one [4] box with [K, 4] boxes (Paddle's normalized=True)."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area + areas - inter)


def reference(boxes, scores, keep_top_k):
    """Greedy NMS of one image's [M, C, 4] boxes and [M, C] scores, classes ignored; the kept
    (class, score, box) rows, best first."""
    flat_boxes, flat_scores = boxes.reshape(-1, 4), scores.reshape(-1)
    order = [i for i in np.argsort(-flat_scores, kind='stable')
             if flat_scores[i] > SCORE_THRESHOLD]
    kept = []
    for i in order:
        if not kept or iou(flat_boxes[i], flat_boxes[kept]).max() <= IOU_THRESHOLD:
            kept.append(i)
    kept = kept[:keep_top_k]
    return np.array([[i % NUM_CLASSES, flat_scores[i], *flat_boxes[i]] for i in kept],
                    'float32').reshape(-1, 6)


def by_score(rows):
    return rows[np.argsort(-rows[:, 1], kind='stable')]


def detections(num_rois, seed):
    """R-CNN-like inputs: RoIs around a few objects, each RoI with one box per class (the
    class boxes of one RoI overlap heavily) and softmax-like scores."""
    rng = np.random.RandomState(seed)
    objects = rng.uniform(0, 200, (4, 2))
    centre = objects[rng.randint(0, 4, num_rois)] + rng.normal(0, 6, (num_rois, 2))
    size = rng.uniform(20, 40, (num_rois, 1, 2)) * rng.uniform(0.9, 1.1, (num_rois, NUM_CLASSES, 2))
    centre = centre[:, None, :] + rng.normal(0, 2, (num_rois, NUM_CLASSES, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=2).astype('float32')
    logits = rng.normal(0, 2, (num_rois, NUM_CLASSES + 1))
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return boxes, scores[:, :NUM_CLASSES].astype('float32')


@pytest.mark.parametrize('keep_top_k', [3, 100])
def test_suppresses_across_classes_like_greedy_nms(keep_top_k):
    images = [detections(40, seed=1), detections(25, seed=2)]
    nms = ClassAgnosticNMS(score_threshold=SCORE_THRESHOLD, nms_threshold=IOU_THRESHOLD,
                           keep_top_k=keep_top_k)
    rows, counts, index = nms(
        (paddle.to_tensor(np.concatenate([b for b, _ in images])),
         paddle.to_tensor([len(b) for b, _ in images], 'int32')),
        paddle.to_tensor(np.concatenate([s for _, s in images])), NUM_CLASSES)
    assert index is None
    rows, counts = rows.numpy(), counts.numpy().tolist()
    expected = [reference(b, s, keep_top_k) for b, s in images]
    assert counts == [len(e) for e in expected]
    # several classes survive, but never two boxes of one object
    assert len(np.unique(np.concatenate(expected)[:, 0])) > 1
    start = 0
    for count, want in zip(counts, expected):
        got = by_score(rows[start:start + count])
        np.testing.assert_array_equal(got[:, 0], want[:, 0])
        np.testing.assert_allclose(got[:, 1:], want[:, 1:], rtol=1e-6)
        start += count


def test_per_class_nms_would_keep_more():
    """The same inputs through ppdet's MultiClassNMS keep boxes of one object in several
    classes: the case ClassAgnosticNMS exists for."""
    from ppdet.modeling.layers import MultiClassNMS
    boxes, scores = detections(40, seed=1)
    args = ((paddle.to_tensor(boxes), paddle.to_tensor([40], 'int32')), paddle.to_tensor(scores),
            NUM_CLASSES)
    settings = dict(score_threshold=SCORE_THRESHOLD, nms_threshold=IOU_THRESHOLD, keep_top_k=100)
    per_class = MultiClassNMS(**settings)(*args)[1].numpy()[0]
    agnostic = ClassAgnosticNMS(**settings)(*args)[1].numpy()[0]
    assert agnostic == len(reference(boxes, scores, 100)) < per_class


def test_returns_the_roi_of_each_row_when_asked():
    boxes, scores = detections(30, seed=3)
    nms = ClassAgnosticNMS(score_threshold=SCORE_THRESHOLD, nms_threshold=IOU_THRESHOLD,
                           keep_top_k=100, return_index=True)
    rows, _, index = nms((paddle.to_tensor(boxes), paddle.to_tensor([30], 'int32')),
                         paddle.to_tensor(scores), NUM_CLASSES)
    rows, roi = rows.numpy(), index.numpy()
    label = rows[:, 0].astype(int)
    np.testing.assert_array_equal(rows[:, 2:], boxes[roi, label])
    np.testing.assert_array_equal(rows[:, 1], scores[roi, label])


@pytest.mark.parametrize('keep_top_k', [3, 100])
def test_onnx_form_equals_dygraph(keep_top_k):
    from ppdet_gcnet.deploy.onnx_forms.detections import multiclass_nms_one_image
    boxes, scores = (paddle.to_tensor(a) for a in detections(40, seed=4))
    nms = ClassAgnosticNMS(score_threshold=SCORE_THRESHOLD, nms_threshold=IOU_THRESHOLD,
                           keep_top_k=keep_top_k)
    expected, expected_num, _ = nms((boxes, paddle.to_tensor([40], 'int32')), scores,
                                    NUM_CLASSES)
    ours, our_num = multiclass_nms_one_image(boxes, scores, nms)
    assert our_num.numpy().tolist() == expected_num.numpy().tolist()
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())


def test_rejects_batched_dense_input():
    with pytest.raises(ValueError, match="R-CNN"):
        ClassAgnosticNMS()(paddle.zeros([1, 5, 4]), paddle.zeros([1, 3, 5]))
