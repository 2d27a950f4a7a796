"""JitteredGTBBoxAssigner: jittered ground-truth copies within the stated bounds, and the box head
sampling more foreground RoIs than PaddleDetection's BBoxAssigner on the same proposals."""
import numpy as np
import paddle
import pytest

import ppdet_gcnet  # noqa: F401  (applies compat)
from ppdet.modeling.proposal_generator.target_layer import BBoxAssigner
from ppdet_gcnet.modeling.jittered_gt_assigner import JitteredGTBBoxAssigner, jitter_boxes


def test_jittered_boxes_stay_within_the_shift_and_scale_bounds():
    paddle.seed(0)
    boxes = paddle.to_tensor([[10., 20., 50., 40.], [0., 0., 8., 16.]])
    out = jitter_boxes(boxes, 50, max_shift=0.1, max_scale=0.2).numpy()
    assert out.shape == (100, 4)
    ref = np.tile(boxes.numpy(), (50, 1))
    size, out_size = ref[:, 2:] - ref[:, :2], out[:, 2:] - out[:, :2]
    shift = ((out[:, :2] + out[:, 2:]) - (ref[:, :2] + ref[:, 2:])) / 2 / size
    assert np.all(np.abs(shift) <= 0.1 + 1e-6) and np.abs(shift).max() > 0.05
    ratio = out_size / size
    assert np.all((ratio >= 0.8 - 1e-6) & (ratio <= 1.2 + 1e-6)) and ratio.std() > 0.05


def _foreground(assigner):
    paddle.seed(1)
    gt = paddle.to_tensor([[10., 10., 40., 40.], [60., 60., 100., 90.]])
    background = paddle.to_tensor([[0., 100., 20., 120.], [100., 0., 120., 20.]] * 8)
    inputs = {'gt_bbox': [gt], 'gt_class': [paddle.to_tensor([[0], [2]], dtype='int32')],
              'is_crowd': [paddle.zeros([2, 1], dtype='int32')]}
    _, rois_num, (labels, _, _) = assigner([background], paddle.to_tensor([16], 'int32'), inputs)
    labels = labels[0].numpy()
    assert int(rois_num[0]) == len(labels)
    return labels[labels < 3]


@pytest.mark.parametrize('num_jitter', [0, 6])
def test_more_foreground_than_bbox_assigner_with_the_right_classes(num_jitter):
    args = dict(batch_size_per_im=32, fg_fraction=0.5, num_classes=3)
    plain = _foreground(BBoxAssigner(**args))
    jittered = _foreground(JitteredGTBBoxAssigner(num_jitter=num_jitter, max_shift=0.1,
                                                  max_scale=0.1, **args))
    assert sorted(plain) == [0, 2]  # the appended ground-truth boxes only
    if num_jitter == 0:
        assert sorted(jittered) == [0, 2]
    else:  # shift/scale 0.1 keep IoU > 0.5: every copy is foreground, of its box's class
        assert sorted(jittered) == [0] * 7 + [2] * 7
