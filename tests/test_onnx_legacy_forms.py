"""The ONNX forms of the legacy pipeline's components (ppdet_gcnet.deploy.onnx_forms.legacy_*)
each equal the legacy component itself, in dygraph, on the legacy-config GC add model with the
legacy oracle's seeded weights (tests/legacy_oracle.py) and its fixture image at the small size:
proposals within 1e-4 px (the order of equal scores aside), RoI features within 1e-5 (relative), decoded boxes within 1e-4 px, NMS
and pasted masks exactly, the whole model's detections within 1e-4 px and its masks exactly."""
import numpy as np
import paddle
import pytest

from legacy_oracle import build_model, legacy_reader_sample


@pytest.fixture(scope='module')
def legacy():
    """The legacy model, its inputs and the intermediate tensors of its components."""
    model = build_model('add')
    model.eval()
    sample = legacy_reader_sample('s160')
    inputs = {k: paddle.to_tensor(sample[k][None]) for k in ('image', 'im_shape', 'scale_factor')}
    with paddle.no_grad():
        feats = model.neck(model.backbone(inputs))
        rpn_feats = model.rpn_head.rpn_feat(feats)
        anchors = model.rpn_head.anchor_generator(rpn_feats)
        levels = [(model.rpn_head.rpn_rois_score(f), model.rpn_head.rpn_rois_delta(f), a)
                  for f, a in zip(rpn_feats, anchors)]
        rois, rois_num, _ = model.rpn_head(feats, inputs)
        head_out, _ = model.bbox_head(feats, rois, rois_num, None)
    return model, inputs, feats, levels, rois, rois_num, head_out


def by_score(rois, scores):
    """Rows by descending score, equal scores (which sigmoids create, and the op orders as
    its sort leaves them) by coordinates."""
    rois = np.asarray(rois)
    order = np.lexsort(tuple(rois.T[::-1]) + (-np.asarray(scores),))
    return rois[order]


def as_set(rois):
    rois = np.asarray(rois)
    return rois[np.lexsort(tuple(rois.T[::-1]))]


class switched:
    """`obj` as an instance of `cls` inside the block."""

    def __init__(self, obj, cls):
        self.obj, self.cls, self.old = obj, cls, type(obj)

    def __enter__(self):
        self.obj.__class__ = self.cls
        return self.obj

    def __exit__(self, *exc):
        self.obj.__class__ = self.old


def test_level_proposals_equal_legacy_generator(legacy):
    from ppdet_gcnet.deploy.onnx_forms.proposals import level_proposals
    from ppdet_gcnet.legacy.proposals import padded_shape
    model, inputs, _, levels, _, _, _ = legacy
    generator = model.rpn_head.test_proposal
    im_shape = padded_shape(inputs)
    for scores, deltas, anchors in levels:
        with paddle.no_grad():
            rois, probs, _, _ = generator(scores, deltas, anchors, im_shape)
            ours, our_probs = level_proposals(paddle.nn.functional.sigmoid(scores[0]),
                                              deltas[0], anchors, im_shape[0], generator,
                                              pixel_offset=True)
        assert ours.shape == rois.shape and rois.shape[0] > 0
        np.testing.assert_array_equal(our_probs.numpy(), probs.numpy().ravel())
        np.testing.assert_allclose(by_score(ours.numpy(), our_probs.numpy()),
                                   by_score(rois.numpy(), our_probs.numpy()), atol=1e-4)


def test_rpn_equals_legacy_rpn(legacy):
    from ppdet_gcnet.deploy.onnx_forms.legacy_proposals import ExportableLegacyRPNHead
    model, inputs, feats, _, rois, rois_num, _ = legacy
    with switched(model.rpn_head, ExportableLegacyRPNHead) as head, paddle.no_grad():
        ours, our_num, _ = head(feats, inputs)
    assert our_num.numpy().tolist() == rois_num.numpy().tolist()
    assert rois_num.numpy()[0] > 100
    np.testing.assert_allclose(as_set(ours[0].numpy()), as_set(rois[0].numpy()), atol=1e-4)


def test_fpn_levels_equal_distribute_fpn_proposals_with_pixel_offset(legacy):
    from ppdet_gcnet.deploy.onnx_forms.roi_extractor import fpn_levels
    rois = legacy[4]
    # the proposals, boxes at the +1 level boundaries (sqrt area 112, 224, 448), inverted ones
    sizes = [[0., 0., side - 1, side - 1] for side in (8, 111.9, 112, 224, 447.9, 448, 2000)]
    boxes = paddle.concat([rois[0], paddle.to_tensor(
        sizes + [[5., 5., 4., 9.], [5., 5., 5., 4.], [3., 3., 3., 3.]])])
    count = paddle.to_tensor([boxes.shape[0]], 'int32')
    distributed, _, _ = paddle.vision.ops.distribute_fpn_proposals(
        boxes, 2, 5, 4, 224, pixel_offset=True, rois_num=count)
    levels = fpn_levels(boxes, 2, 5, 4, 224, pixel_offset=True).numpy()
    assert set(levels.tolist()) == {2, 3, 4, 5}
    for level, expected in zip(range(2, 6), distributed):
        np.testing.assert_array_equal(boxes.numpy()[levels == level], expected.numpy())


@pytest.mark.parametrize('head', ['bbox_head', 'mask_head'])
def test_roi_features_equal_legacy_roi_align(legacy, head):
    # unaligned RoIAlign through the aligned op (what paddle2onnx converts): float rounding
    from ppdet_gcnet.deploy.onnx_forms import ExportableLegacyRoIAlign
    model, _, feats, _, rois, rois_num, _ = legacy
    # the proposals and boxes under one feature pixel (widened to one by the unaligned op)
    boxes = [paddle.concat([rois[0], paddle.to_tensor([[10., 10., 10.5, 11.], [40., 8., 40., 8.],
                                                        [3., 50., 5., 50.2]])])]
    count = paddle.to_tensor([boxes[0].shape[0]], 'int32')
    extractor = getattr(model, head).roi_extractor
    with paddle.no_grad():
        expected = extractor(feats, boxes, count).numpy()
        with switched(extractor, ExportableLegacyRoIAlign):
            ours = extractor(feats, boxes, count).numpy()
    assert np.abs(ours - expected).max() <= 1e-5 * np.abs(expected).max()


def test_box_decoding_equals_legacy_rcnn_box(legacy):
    from ppdet_gcnet.deploy.onnx_forms.legacy_detections import ExportableLegacyRCNNBox
    model, inputs, _, _, rois, rois_num, head_out = legacy
    decode = model.bbox_post_process.decode
    args = (head_out, (rois, rois_num), inputs['im_shape'], inputs['scale_factor'])
    with paddle.no_grad():
        (expected, _), expected_prob = decode(*args)
        with switched(decode, ExportableLegacyRCNNBox):
            (ours, _), our_prob = decode(*args)
    # box_coder's kernel rounds differently in the last bit (measured: 1.5e-5 px at most)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(our_prob.numpy(), expected_prob.numpy())


@pytest.mark.parametrize('keep_top_k', [100, 1000])
def test_nms_with_plus_one_iou_equals_multiclass_nms(legacy, keep_top_k):
    from ppdet_gcnet.deploy.onnx_forms.detections import multiclass_nms_one_image
    model, inputs, _, _, rois, rois_num, head_out = legacy
    post = model.bbox_post_process
    assert post.nms.normalized is False
    with paddle.no_grad():
        boxes, scores = post.decode(head_out, (rois, rois_num), inputs['im_shape'],
                                    inputs['scale_factor'])
        kept = post.nms.keep_top_k
        post.nms.keep_top_k = keep_top_k
        try:
            expected, expected_num, _ = post.nms(boxes, scores, post.num_classes)
            ours, our_num = multiclass_nms_one_image(boxes[0], scores, post.nms)
        finally:
            post.nms.keep_top_k = kept
    assert our_num.numpy().tolist() == expected_num.numpy().tolist()
    assert ours.shape[0] > 100 or keep_top_k == 100
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())


def test_no_detections_give_the_legacy_placeholder_row():
    from ppdet_gcnet.deploy.onnx_forms.legacy_detections import ExportableLegacyBBoxPostProcess
    from ppdet_gcnet.legacy.box_decode import LegacyBBoxPostProcess
    args = (paddle.zeros([0, 6]), paddle.to_tensor([0], 'int32'),
            paddle.to_tensor([[64., 80.]]), paddle.to_tensor([[0.5, 0.25]]))
    _, expected, expected_num = LegacyBBoxPostProcess(num_classes=3).get_pred(*args)
    _, ours, our_num = ExportableLegacyBBoxPostProcess(num_classes=3).get_pred(*args)
    assert our_num.numpy().tolist() == expected_num.numpy().tolist() == [1]
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())


def test_mask_paste_equals_legacy_mask_post_process():
    from ppdet_gcnet.deploy.onnx_forms.legacy_detections import ExportableLegacyMaskPostProcess
    from ppdet_gcnet.legacy.mask_paste import LegacyMaskPostProcess
    rng = np.random.RandomState(0)
    masks = paddle.to_tensor(rng.rand(5, 28, 28).astype('float32'))
    # inside, across the edges, under a pixel, negative corners (truncation toward zero)
    boxes = paddle.to_tensor(np.array([[0, 0.9, 10.2, 4.7, 40.7, 30.1], [0, 0.8, -3.5, -2.2, 20, 12],
                                       [0, 0.7, 50, 60, 70.3, 95.6], [0, 0.6, 33, 33, 33.4, 33],
                                       [0, 0.5, 1, 2, 63.9, 79.9]], 'float32'))
    num = paddle.to_tensor([5], 'int32')
    origin = paddle.to_tensor([[80., 64.]])
    expected = LegacyMaskPostProcess()(masks, boxes, num, origin).numpy()
    ours = ExportableLegacyMaskPostProcess()(masks, boxes, num, origin).numpy()
    assert expected.sum() > 1000
    np.testing.assert_array_equal(ours, expected)


def test_whole_model_equals_legacy_model(legacy):
    import copy
    from ppdet_gcnet.deploy.onnx_forms import make_onnx_exportable
    model, inputs = legacy[0], legacy[1]
    exportable = copy.deepcopy(model)
    counts = make_onnx_exportable(exportable)
    assert all(v for k, v in counts.items() if 'Legacy' in k), counts
    assert not any(v for k, v in counts.items() if 'Legacy' not in k), counts
    with paddle.no_grad():
        expected = model(inputs)
        ours = exportable(inputs)
    assert ours['bbox_num'].numpy().tolist() == expected['bbox_num'].numpy().tolist() == [100]
    np.testing.assert_array_equal(ours['bbox'].numpy()[:, 0], expected['bbox'].numpy()[:, 0])
    np.testing.assert_allclose(ours['bbox'].numpy()[:, 1], expected['bbox'].numpy()[:, 1],
                               atol=1e-5)
    np.testing.assert_allclose(ours['bbox'].numpy(), expected['bbox'].numpy(), atol=1e-4)
    np.testing.assert_array_equal(ours['mask'].numpy(), expected['mask'].numpy())


def test_a_legacy_component_without_a_form_is_refused_in_one_line():
    from ppdet_gcnet.deploy.export_forms import prepare_for_export
    from ppdet_gcnet.deploy.onnx_export import ExportError
    unknown = type('LegacyUnknown', (), {'__module__': 'ppdet_gcnet.legacy.unknown'})
    model = paddle.nn.Layer()
    model.component = unknown()
    with pytest.raises(ExportError, match='LegacyUnknown have no ONNX forms') as error:
        prepare_for_export(model, onnx=True)
    assert '\n' not in str(error.value)
