"""The exported model agrees with the dygraph model (plain kernels and oneDNN fp32; raw and
in-graph pasted masks), deploy's mask pasting equals PaddleDetection's, the oneDNN-safe rewrites
are exact, and deploy preprocessing equals PaddleDetection's reader."""
import numpy as np
import paddle
import ppdet
import pytest

from deploy.python.image_io import read_image_rgb
from deploy.python.model_files import load_model_files
from deploy.python.predictor import (PredictorOptions, create_predictor, find_onednn_unsafe_ops,
                                     run_predictor)
from deploy.python.preprocess import build_preprocess, preprocess_image
from ppdet_gcnet.deploy import RawMaskOutput
from tests.test_deploy_fixtures import (DETECTIONS, deploy_model, dygraph_model,  # noqa: F401
                                        pasted_mask_model, shapes_image)

pytestmark = pytest.mark.ppdet  # runs PaddleDetection itself: in both test legs
UPSTREAM_PPDET = ppdet.version.full_version != '2.6.0'

# Tight: same weights, same input; only kernel arithmetic differs.
BOX_ATOL_PX = 0.05
SCORE_ATOL = 1e-4
MASK_MISMATCH_MAX = 0.002  # fraction of mask pixels, over all detections
PROBABILITY_ATOL = 1e-4


def model_inputs(export_dir, image_path):
    """Inputs made by the export's own infer_cfg.yml, as infer.py makes them."""
    model = load_model_files(export_dir)
    image, info = preprocess_image(read_image_rgb(image_path), build_preprocess(model.preprocess))
    return model, {'image': image[None], 'im_shape': info['im_shape'][None],
                   'scale_factor': info['scale_factor'][None]}


def dygraph_outputs(model, inputs, raw_masks=False):
    """Boxes and masks of the dygraph model: pasted (ppdet's MaskPostProcess) or raw."""
    pasting = model.mask_post_process
    if raw_masks:
        model.mask_post_process = RawMaskOutput()
    try:
        with paddle.no_grad():
            out = model({k: paddle.to_tensor(v) for k, v in inputs.items()})
    finally:
        model.mask_post_process = pasting
    return out['bbox'].numpy(), out['mask'].numpy()


def match_detections(reference, candidate):
    """Index in `candidate` of the same-class box closest to each `reference` box."""
    order = []
    for row in reference:
        same_class = np.where(candidate[:, 0] == row[0])[0]
        assert len(same_class), f"class {row[0]} missing from the exported model's detections"
        distance = np.abs(candidate[same_class, 2:] - row[2:]).max(axis=1)
        order.append(same_class[np.argmin(distance)])
    return np.array(order)


def assert_agree(dy_boxes, dy_masks, outputs):
    boxes, masks = outputs['boxes'], outputs['masks']
    assert len(dy_boxes) == DETECTIONS and boxes.shape == dy_boxes.shape
    order = match_detections(dy_boxes, boxes)
    assert len(set(order.tolist())) == len(order), "two dygraph boxes matched one exported box"
    np.testing.assert_allclose(boxes[order, 2:], dy_boxes[:, 2:], atol=BOX_ATOL_PX, rtol=0)
    np.testing.assert_allclose(boxes[order, 1], dy_boxes[:, 1], atol=SCORE_ATOL, rtol=0)
    assert masks.shape == dy_masks.shape and masks.dtype == dy_masks.dtype
    if np.issubdtype(masks.dtype, np.floating):
        np.testing.assert_allclose(masks[order], dy_masks, atol=PROBABILITY_ATOL, rtol=0)
        assert 0.2 < float((dy_masks >= 0.5).mean()) < 0.8, "masks too one-sided to test"
    else:
        mismatch = float((masks[order] != dy_masks).mean())
        assert mismatch <= MASK_MISMATCH_MAX, f"{mismatch:.4%} of mask pixels differ"
        assert dy_masks.any(), "masks are all empty: the comparison would prove nothing"


@pytest.mark.parametrize('enable_mkldnn', [False, True], ids=['plain', 'onednn_fp32'])
def test_exported_matches_dygraph(deploy_model, shapes_image, enable_mkldnn):
    _, dygraph, export_dir = deploy_model
    model, inputs = model_inputs(export_dir, shapes_image)
    assert model.raw_masks
    dy_boxes, dy_masks = dygraph_outputs(dygraph, inputs, raw_masks=True)
    predictor = create_predictor(model, PredictorOptions(cpu_threads=1,
                                                         enable_mkldnn=enable_mkldnn))
    assert_agree(dy_boxes, dy_masks, run_predictor(predictor, inputs))


def test_exported_pasted_masks_match_dygraph(pasted_mask_model, shapes_image):
    _, dygraph, export_dir = pasted_mask_model
    model, inputs = model_inputs(export_dir, shapes_image)
    assert not model.raw_masks
    dy_boxes, dy_masks = dygraph_outputs(dygraph, inputs)
    predictor = create_predictor(model, PredictorOptions(cpu_threads=1, enable_mkldnn=True))
    assert_agree(dy_boxes, dy_masks, run_predictor(predictor, inputs))


@pytest.mark.xfail(UPSTREAM_PPDET, strict=True,
                   reason="upstream develop's in-graph paste differs from deploy's beyond "
                          "rounding: 0.58 % of mask pixels, some 0.02 or more from the threshold")
def test_deploy_pasting_equals_paddledetection(dygraph_model, shapes_image):
    """deploy's per-box paste of raw probabilities == ppdet's in-graph full-canvas paste."""
    from deploy.python.results import paste_masks
    _, dygraph, _ = dygraph_model
    _, inputs = model_inputs_for_image(shapes_image)
    boxes, pasted = dygraph_outputs(dygraph, inputs)
    _, raw = dygraph_outputs(dygraph, inputs, raw_masks=True)
    ours = paste_masks(raw, boxes[:, 2:], *pasted.shape[1:])
    assert pasted.any()
    mismatch = float((ours != pasted).sum() / max(pasted.sum(), 1))
    # float32 rounding of the two samplers flips pixels right at the 0.5 threshold (0.19 %)
    assert mismatch <= 0.005, f"{mismatch:.3%} of mask pixels differ"


def model_inputs_for_image(image_path):
    from tests.test_deploy_fixtures import preprocessed
    return None, preprocessed(image_path)


def test_export_is_onednn_safe(deploy_model):
    export_dir = deploy_model[2]
    assert find_onednn_unsafe_ops(load_model_files(export_dir).program) == []


def test_onednn_safe_rewrites_are_exact():
    from ppdet.modeling.necks.fpn import FPN
    from ppdet_gcnet.deploy import make_onednn_safe
    from ppdet_gcnet.modeling import GlobalContextBlock
    paddle.seed(3)
    fpn = FPN(in_channels=[8, 16, 32, 64], out_channel=8, spatial_scales=[1 / 4, 1 / 8, 1 / 16,
                                                                           1 / 32])
    block = GlobalContextBlock(16, ratio=1 / 4, fusion_types=['channel_add', 'channel_mul'])
    # Non-zero last convs, so the transform (and its LayerNorm) shows in the output.
    for p in block.parameters():
        p.set_value(paddle.randn(p.shape) * 0.3)
    fpn.eval(), block.eval()
    feats = [paddle.randn([2, c, 32 // s, 48 // s]) for c, s in zip([8, 16, 32, 64], [1, 2, 4, 8])]
    x = paddle.randn([2, 16, 6, 10])
    before = [f.numpy() for f in fpn(feats)], block(x).numpy()
    switched = make_onednn_safe(fpn), make_onednn_safe(block)
    assert switched == ({'FPN': 1, 'LayerNorm': 0}, {'FPN': 0, 'LayerNorm': 2})
    after = [f.numpy() for f in fpn(feats)], block(x).numpy()
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(before[1], after[1], rtol=1e-5, atol=1e-5)


def test_preprocess_equals_paddledetection_reader(deploy_model, shapes_image):
    from ppdet.data.transform.operators import Decode, NormalizeImage, Permute, Resize
    cfg, _, export_dir = deploy_model
    model = load_model_files(export_dir)
    image, info = preprocess_image(read_image_rgb(shapes_image), build_preprocess(model.preprocess))
    with open(shapes_image, 'rb') as f:
        sample = {'im_file': shapes_image, 'image': f.read()}
    reader = [Decode(), Resize(target_size=[160, 160], keep_ratio=True, interp=2),
              NormalizeImage(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]), Permute()]
    for op in reader:
        sample = op(sample)
    h, w = sample['image'].shape[1:]
    np.testing.assert_allclose(image[:, :h, :w], sample['image'], atol=1e-5)
    assert not image[:, h:, :].any() and not image[:, :, w:].any()  # PadStride zeros
    assert image.shape[1] % 32 == 0 and image.shape[2] % 32 == 0
    np.testing.assert_allclose(info['im_shape'], sample['im_shape'])
    np.testing.assert_allclose(info['scale_factor'], sample['scale_factor'])
