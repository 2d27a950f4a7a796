"""ppdet_gcnet.compat: each probe sees the defects of the installed PaddleDetection line (2.6.0:
all; upstream develop: the ragged batches) and only those, each fix gives the
right answer (checked against NumPy or hand-worked figures), and applying twice changes nothing."""
import types

import numpy as np
import paddle
import pytest

import ppdet
import ppdet_gcnet  # noqa: F401  (applies the fixes)
from ppdet_gcnet import compat
from ppdet_gcnet.compat import (bbox_post_process, mask_targets, proposal_targets, rpn_proposals,
                                visualizer_text_size)
from ppdet_gcnet.compat._patching import installed, is_replaced

pytestmark = pytest.mark.ppdet

PYPI_PPDET = ppdet.version.full_version == '2.6.0'
FIX_IDS = [fix.NAME for fix in compat.FIXES]
# The defects each tested PaddleDetection line has on this Paddle: PyPI's 2.6.0 all but the
# upstream font cache; upstream develop (source snapshot 666f597, which calls itself 0.0.0) the
# font cache, the ragged batches and in-place checkpoint writes.
INSTALLED_DEFECTS = ([name for name in FIX_IDS if name != 'visualizer_font_cache'] if PYPI_PPDET
                     else ['visualizer_font_cache', 'pir_ragged_batches', 'atomic_checkpoints'])
# Per-image RoI counts: int32 where the 0-D fixes build them (2.6.0's RoI ops take int32),
# int64 in upstream's own code.
COUNT_DTYPE = paddle.int32 if PYPI_PPDET else paddle.int64


def _with_originals(monkeypatch, fix):
    for owner, name in fix.replaced_attributes():
        monkeypatch.setattr(owner, name, installed(owner, name))


def test_import_applies_exactly_the_fixes_the_installed_ppdet_needs():
    assert compat.applied_fixes() == tuple(INSTALLED_DEFECTS)


@pytest.mark.parametrize('fix', compat.FIXES, ids=FIX_IDS)
def test_probe_verdict_on_the_installed_code(fix, monkeypatch):
    # 2.6.0: every probe sees its defect; upstream: only those upstream has not fixed.
    _with_originals(monkeypatch, fix)
    assert fix.probe() is (fix.NAME in INSTALLED_DEFECTS)


@pytest.mark.parametrize('fix', compat.FIXES, ids=FIX_IDS)
def test_probe_is_quiet_on_correct_code(fix):
    # The replacement stands in for an upstream PaddleDetection that already behaves.
    assert fix.probe() is False


@pytest.mark.parametrize('fix', compat.FIXES, ids=FIX_IDS)
def test_apply_twice_is_a_no_op(fix):
    if fix.NAME not in INSTALLED_DEFECTS:  # upstream fixed it: its code is left as it is
        assert not any(is_replaced(owner, name, fix.NAME)
                       for owner, name in fix.replaced_attributes())
        return
    before = [getattr(owner, name) for owner, name in fix.replaced_attributes()]
    assert fix.apply() is False
    assert [getattr(owner, name) for owner, name in fix.replaced_attributes()] == before
    assert compat.apply_all() == []


def test_apply_all_leaves_correct_code_untouched(monkeypatch):
    # With every defect already repaired, a fresh probe-then-apply pass must do nothing.
    monkeypatch.setattr(compat, '_applied', [])
    assert compat.apply_all() == []


# --- rpn_proposals -----------------------------------------------------------------------------

def test_rpn_proposals_are_each_images_top_k_over_levels():
    from ppdet.modeling.proposal_generator.proposal_generator import ProposalGenerator
    from ppdet.modeling.proposal_generator.rpn_head import RPNHead
    rng = np.random.RandomState(3)
    generator = ProposalGenerator(pre_nms_top_n=6, post_nms_top_n=5, nms_thresh=0.99,
                                  min_size=0.)

    class Head:  # the attributes `_gen_proposal` reads
        export_onnx, training, test_proposal, train_proposal = False, False, generator, generator

    scores, deltas, anchors = [], [], []
    for size, stride in ((4, 4), (2, 8)):  # two FPN levels, one anchor per position
        ys, xs = np.meshgrid(np.arange(size) * stride, np.arange(size) * stride, indexing='ij')
        level = np.stack([xs, ys, xs + 2 * stride, ys + 2 * stride], -1).reshape(-1, 4)
        anchors.append(paddle.to_tensor(level.astype('float32')))
        scores.append(paddle.to_tensor(rng.rand(2, 1, size, size).astype('float32')))
        deltas.append(paddle.to_tensor(rng.uniform(-.1, .1, (2, 4, size, size)).astype('float32')))
    im_shape = paddle.to_tensor([[16., 16.], [16., 16.]])

    rois, rois_num = RPNHead._gen_proposal(Head(), scores, deltas, anchors,
                                           {'im_shape': im_shape})

    assert rois_num.shape == [2] and rois_num.dtype == COUNT_DTYPE
    for i in range(2):
        # Reference: each level's proposals for image i, merged and cut to the best 5 by score.
        boxes, probs = [], []
        for s, d, a in zip(scores, deltas, anchors):
            b, p, _, _ = generator(s[i:i + 1], d[i:i + 1], a, im_shape[i:i + 1])
            boxes.append(b.numpy())
            probs.append(p.numpy().ravel())
        boxes, probs = np.concatenate(boxes), np.concatenate(probs)
        expected = boxes[np.argsort(-probs, kind='stable')[:5]]
        assert int(rois_num[i]) == len(expected) == rois[i].shape[0]
        np.testing.assert_allclose(rois[i].numpy(), expected, rtol=1e-6)


# --- proposal_targets --------------------------------------------------------------------------

def _iou(a, b):
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_proposal_targets_label_every_roi_by_iou():
    from ppdet.modeling.proposal_generator import target_layer
    num_classes = 3
    images = [  # (proposals, gt boxes, gt classes): counts differ per image
        (np.array([[0, 0, 10, 10], [30, 30, 40, 40], [1, 0, 10, 10]], 'float32'),
         np.array([[0, 0, 10, 10], [30, 30, 42, 40]], 'float32'), np.array([[2], [0]], 'int32')),
        (np.array([[5, 5, 15, 15], [50, 50, 60, 60]], 'float32'),
         np.array([[5, 5, 14, 15]], 'float32'), np.array([[1]], 'int32')),
    ]
    rois, labels, gt_boxes, gt_inds, rois_num = target_layer.generate_proposal_target(
        [paddle.to_tensor(p) for p, _, _ in images], [paddle.to_tensor(c) for _, _, c in images],
        [paddle.to_tensor(g) for _, g, _ in images], batch_size_per_im=16, fg_fraction=0.5,
        fg_thresh=0.5, bg_thresh=0.5, num_classes=num_classes, use_random=False)

    assert rois_num.shape == [2] and rois_num.dtype == COUNT_DTYPE
    assert rois_num.numpy().tolist() == [5, 3]  # every proposal plus every gt box is sampled
    for i, (proposals, gt, classes) in enumerate(images):
        candidates = np.concatenate([proposals, gt])
        iou = _iou(candidates, gt)
        best = iou.argmax(1)
        want_labels = np.where(iou.max(1) >= 0.5, classes[best, 0], num_classes)
        want = sorted(zip(map(tuple, candidates), want_labels, map(tuple, gt[best])))
        got = sorted(zip(map(tuple, rois[i].numpy()), labels[i].numpy(),
                         map(tuple, gt_boxes[i].numpy())))
        assert [(r, int(l)) for r, l, _ in got] == [(r, int(l)) for r, l, _ in want]
        fg = [(g_got, g_want) for (_, l, g_got), (_, _, g_want) in zip(got, want)
              if l != num_classes]
        assert fg and all(a == b for a, b in fg)
        np.testing.assert_array_equal(gt[gt_inds[i].numpy()], gt_boxes[i].numpy())


# --- mask_targets ------------------------------------------------------------------------------

def test_mask_targets_rasterise_each_foreground_rois_polygon():
    from ppdet.modeling.proposal_generator import target_layer
    # Polygons as the data pipeline hands them over: lists of coordinate lists.
    left_half = [[0, 0, 4, 0, 4, 8, 0, 8]]      # of box [0, 0, 8, 8]
    top_left = [[1, 1, 5, 1, 5, 5, 1, 5]]       # of box [1, 1, 9, 9]
    rois = [np.array([[0, 0, 8, 8], [20, 20, 30, 30]], 'float32'),
            np.array([[1, 1, 9, 9], [0, 0, 8, 8]], 'float32'),
            np.array([[2, 2, 6, 6], [20, 20, 30, 30]], 'float32')]
    labels = [np.array([1, 3], 'int32'), np.array([2, 0], 'int32'), np.array([3, 3], 'int32')]
    gt_inds = [np.array([0, 0], 'int64'), np.array([1, 0], 'int64'), np.array([0, 0], 'int64')]
    outs = target_layer.generate_mask_target(
        [[left_half], [left_half, top_left], [left_half]], [paddle.to_tensor(r) for r in rois],
        [paddle.to_tensor(l) for l in labels], [paddle.to_tensor(g) for g in gt_inds],
        num_classes=3, resolution=4)
    mask_rois, mask_rois_num, classes, masks, index, weights = outs

    assert mask_rois_num.shape == [3] and mask_rois_num.dtype == COUNT_DTYPE
    # image 3 has no foreground: one placeholder RoI that carries zero weight
    assert mask_rois_num.numpy().tolist() == [1, 2, 1]
    np.testing.assert_array_equal(mask_rois[1].numpy(), rois[1])
    assert classes.numpy().tolist() == [1, 2, 0, 0]
    assert weights.numpy().tolist() == [1, 1, 1, 0]
    assert index.numpy().ravel().tolist() == [0, 0, 1, 1]
    half = np.zeros((4, 4), 'int32')
    half[:, :2] = 1
    quarter = np.zeros((4, 4), 'int32')
    quarter[:2, :2] = 1
    for got, want in zip(masks.numpy()[:3], [half, quarter, half]):
        np.testing.assert_array_equal(got, want)


# --- bbox_post_process -------------------------------------------------------------------------

def test_get_pred_rescales_clips_and_fills_empty_images():
    from ppdet.modeling.post_process import BBoxPostProcess
    post = BBoxPostProcess(num_classes=3)
    _, pred, num = post.get_pred(**bbox_post_process._tiny_case())
    assert num.numpy().tolist() == [2, 1]
    np.testing.assert_allclose(pred.numpy(), bbox_post_process.TINY_CASE_EXPECTED)
    np.testing.assert_array_equal(post.get_origin_shape().numpy(), [[8, 8], [8, 8], [8, 8]])


# --- visualizer_font_cache ---------------------------------------------------------------------

def test_font_cache_folder_is_the_users_home(tmp_path, monkeypatch):
    from ppdet.utils import download
    from ppdet_gcnet.compat import visualizer_font_cache as fix
    font = tmp_path / 'home' / '.cache' / 'paddle' / 'simfang.ttf'
    font.parent.mkdir(parents=True)
    font.write_bytes(b'stand-in font')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.chdir(tmp_path)
    # a stand-in for the visualizer module, holding ppdet's own (non-expanding) get_path
    owner = types.SimpleNamespace(get_path=download.get_path)
    monkeypatch.setattr(fix, '_visualizer_module', lambda: owner)
    assert fix.apply() is True and fix.apply() is False
    path, _ = owner.get_path('https://paddledet.bj.bcebos.com/simfang.ttf', '~/.cache/paddle/')
    assert path == str(font)  # found in the cache, nothing downloaded
    assert not (tmp_path / '~').exists()


# --- visualizer_text_size ----------------------------------------------------------------------

def test_draw_bbox_draws_box_and_label():
    from PIL import Image
    from ppdet.utils import visualizer
    image = Image.new('RGB', (64, 64))
    dets = [{'image_id': 7, 'category_id': 1, 'bbox': [10, 30, 20, 20], 'score': 0.9},
            {'image_id': 7, 'category_id': 1, 'bbox': [40, 40, 10, 10], 'score': 0.1},
            {'image_id': 8, 'category_id': 1, 'bbox': [40, 40, 10, 10], 'score': 0.9}]
    drawn = np.asarray(visualizer.draw_bbox(image, 7, {1: 'circle'}, dets, 0.5)).sum(-1) > 0
    assert drawn[30:51, 10].all() and drawn[50, 10:31].all()  # box edges
    assert drawn[25, 12]                                        # label background above it
    assert not drawn[42:50, 42:50].any() and not drawn[39:52, 39].any()  # filtered boxes


# --- export_full_graph -------------------------------------------------------------------------

def test_export_tracing_defaults_to_full_graph_only_inside_the_trainer_call():
    import paddle
    from ppdet_gcnet.compat.export_full_graph import full_graph_by_default
    layer = paddle.nn.Linear(2, 2)
    spec = [paddle.static.InputSpec([None, 2], 'float32')]
    with full_graph_by_default():
        static = paddle.jit.to_static(layer, input_spec=spec)
        assert static.forward.main_program is not None  # raises for a partial-graph function
    with pytest.raises(RuntimeError):  # Paddle's own default is back outside
        paddle.jit.to_static(paddle.nn.Linear(2, 2), input_spec=spec).forward.main_program


# --- multiclass_nms_pir ------------------------------------------------------------------------

def test_multiclass_nms_in_a_pir_program_matches_dygraph_and_hand_worked_result():
    from ppdet.modeling import ops
    from ppdet_gcnet.compat import multiclass_nms_pir
    boxes, scores = multiclass_nms_pir.tiny_inputs()
    # Class 0 keeps box 0 (box 1 overlaps it, box 2 is under the threshold); class 1 keeps
    # box 2 and box 1, which suppresses box 0. Sorted by score over both classes.
    want = np.array([[0, .9, 0, 0, 10, 10], [1, .7, 20, 20, 30, 30], [1, .3, 1, 1, 10, 10]],
                    'float32')
    eager = ops.multiclass_nms(paddle.to_tensor(boxes), paddle.to_tensor(scores),
                               **multiclass_nms_pir.tiny_kwargs())
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        fetch = multiclass_nms_pir.build_static_nms(main, startup)
        static = paddle.static.Executor(paddle.CPUPlace()).run(
            main, feed={'boxes': boxes, 'scores': scores}, fetch_list=list(fetch))
    finally:
        paddle.disable_static()
    np.testing.assert_allclose(eager[0].numpy(), want, rtol=1e-6)
    for got, expected in zip(static, eager):
        np.testing.assert_array_equal(got, expected.numpy())
    assert static[1].tolist() == [3] and static[2].ravel().tolist() == [0, 2, 1]


def test_a_probe_that_cannot_run_leaves_its_fix_unapplied(monkeypatch, caplog):
    class Unreadable:  # e.g. a ppdet whose function moved: the probe itself fails
        NAME = 'unreadable'

        @staticmethod
        def probe():
            raise AttributeError('no such function')

        @staticmethod
        def apply():
            raise AssertionError('must not be applied')

    monkeypatch.setattr(compat, 'FIXES', compat.FIXES + (Unreadable, ))
    with caplog.at_level('WARNING'):
        assert compat.apply_all() == []
    assert 'unreadable' not in compat.applied_fixes()
    assert 'probe unreadable could not run' in caplog.text


# --- pir_ragged_batches ------------------------------------------------------------------------
# The batched forms run in dygraph too: each must equal ppdet's per-image form there.

def test_batched_get_pred_equals_the_per_image_form():
    from ppdet.modeling.post_process import BBoxPostProcess
    from ppdet_gcnet.compat import pir_ragged_batches
    post = BBoxPostProcess(num_classes=3)
    _, pred, num = pir_ragged_batches.batched_get_pred(post, **bbox_post_process._tiny_case())
    assert num.numpy().tolist() == [2, 1]
    np.testing.assert_allclose(pred.numpy(), bbox_post_process.TINY_CASE_EXPECTED)
    np.testing.assert_array_equal(post.get_origin_shape().numpy(), [[8, 8], [8, 8], [8, 8]])


@pytest.mark.parametrize('post_nms_top_n', [5, 100], ids=['cut-by-score', 'all-kept'])
def test_batched_proposals_equal_the_per_image_form(post_nms_top_n):
    from ppdet.modeling.proposal_generator.proposal_generator import ProposalGenerator
    from ppdet.modeling.proposal_generator.rpn_head import RPNHead
    from ppdet_gcnet.compat import pir_ragged_batches
    rng = np.random.RandomState(5)
    generator = ProposalGenerator(pre_nms_top_n=12, post_nms_top_n=post_nms_top_n,
                                  nms_thresh=0.5, min_size=0.)

    class Head:
        export_onnx, training, test_proposal, train_proposal = False, False, generator, generator

    scores, deltas, anchors = [], [], []
    for size, stride in ((4, 4), (2, 8)):
        ys, xs = np.meshgrid(np.arange(size) * stride, np.arange(size) * stride, indexing='ij')
        level = np.stack([xs, ys, xs + 2 * stride, ys + 2 * stride], -1).reshape(-1, 4)
        anchors.append(paddle.to_tensor(level.astype('float32')))
        scores.append(paddle.to_tensor(rng.rand(2, 1, size, size).astype('float32')))
        deltas.append(paddle.to_tensor(rng.uniform(-.3, .3, (2, 4, size, size)).astype('float32')))
    inputs = {'im_shape': paddle.to_tensor([[16., 16.], [16., 12.]])}

    per_image, per_image_num = RPNHead._gen_proposal(Head(), scores, deltas, anchors, inputs)
    batched, batched_num = pir_ragged_batches.batched_proposals(Head(), scores, deltas, anchors,
                                                                inputs)
    assert len(batched) == 1
    assert batched_num.numpy().tolist() == per_image_num.numpy().tolist()
    np.testing.assert_array_equal(batched[0].numpy(),
                                  np.concatenate([r.numpy() for r in per_image]))
    if post_nms_top_n == 100:  # NMS leaves each image its own count: a ragged batch
        assert per_image_num[0] != per_image_num[1]


def test_batched_rcnn_box_equals_the_per_image_form():
    from ppdet.modeling.layers import RCNNBox
    from ppdet_gcnet.compat import pir_ragged_batches
    from ppdet_gcnet.compat._patching import installed, is_replaced
    rng = np.random.RandomState(2)
    box = RCNNBox(num_classes=2)
    rois = [paddle.to_tensor(np.array(r, 'float32')) for r in
            ([[0, 0, 8, 8], [4, 4, 30, 20], [10, 2, 12, 9]], [[1, 1, 5, 5]])]
    rois_num = paddle.to_tensor(np.array([3, 1], 'int32'))
    head_out = (paddle.to_tensor(rng.uniform(-1, 1, (4, 8)).astype('float32')),
                paddle.to_tensor(rng.rand(4, 3).astype('float32')))
    im_shape = paddle.to_tensor([[16., 24.], [6., 6.]])  # the second image clips hard
    (want, want_num), want_scores = installed(RCNNBox, '__call__')(
        box, head_out, (rois, rois_num), im_shape, None)
    (got, got_num), got_scores = pir_ragged_batches.batched_rcnn_box(
        box, head_out, ([paddle.concat(rois)], rois_num), im_shape, None)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(got_scores.numpy(), want_scores.numpy())
    assert got.numpy()[3].max() <= 6
