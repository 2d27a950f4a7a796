"""Every config of configs/gcnet/ exports to ONNX and runs in ONNX Runtime and OpenVINO.

The configs fall into few graph structures: once depth (ResNet-50 / 101 blocks), GC ratio
(r4 / r16), SyncBN (plain BN when exported), class count, weights and dataset are set aside, the
rest of each merged config (architecture, backbone variant and grouping, DCN stages, neck,
heads, RoI extractors, post-processing, and whether and how GC blocks are fused) decides which
ops the export holds. `test_every_config_has_a_tested_structure` computes that signature for
every config file and checks each one equals that of a row exported here or in
tests/test_onnx_export.py. GC blocks themselves (add and mul, and without them) are exported
and checked on the ResNet-vd Mask R-CNN rows there; the rows here then differ in everything
else: mmdetection's ResNet and ResNeXt Mask R-CNN, Cascade Mask R-CNN with and without DCN,
Faster and Cascade R-CNN, the legacy-exact pipeline (configs/gcnet/legacy/: +1 pixel boxes,
unaligned RoIAlign, the legacy reader and mask paste), and the quickstart (class-agnostic NMS).

Each representative: its own config on the generated shapes data, reduced (128-px input,
ResNet(-eXt)-50 for the 101-layer rows, narrow FPN and heads, 64 proposals), calibrated random
weights, exported with --onnx --raw_masks; deploy's ONNX Runtime and OpenVINO predictors then
give Paddle Inference's detections on the same export (classes equal, boxes within 0.01 px,
scores within 1e-4, masks differing in under 0.1 % of pixels); OpenVINO runs the DCN row through
the backend's DeformConv conversion. The legacy row is exported with its own reader (the
legacy normalise-then-resize) and its proposals cut to 64 too; deploy's Paddle Inference
detections on it (the legacy preprocessing and raw-mask paste in deploy/python/legacy.py)
also equal the dygraph legacy model's (its in-graph legacy paste): boxes within 0.01 px, masks
differing in under 0.1 % of pixels; and its export without --raw_masks (the legacy paste in the
graph, ONNX form included) gives the same in every backend.
"""
import copy
import glob
import json
import os

import numpy as np
import pytest

from tool_runner import ROOT

ZOO = os.path.join(ROOT, 'configs', 'gcnet')
# the legacy-exact pipeline (its mul config has the same structure)
LEGACY = 'legacy/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco'
# representative row: backbone depth in the test
REPRESENTATIVES = {
    'mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco': 50,
    'mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco': 50,
    'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco': 50,
    'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_r16_gcb_c3-c5_1x_coco': 50,
    'faster_rcnn_r50_vd_fpn_gcb_add_r16_1x_coco': 18,
    'cascade_rcnn_r50_vd_fpn_gcb_add_r16_1x_coco': 18,
    LEGACY: 18,
    # the quickstart: class-agnostic NMS
    'shapes/mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes': 18,
}
# exported to ONNX and compared in tests/test_onnx_export.py (COCO_ROWS, quickstart config)
TESTED_ELSEWHERE = ('mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco', 'mask_rcnn_r50_vd_fpn_2x_coco')
BOX_ATOL_PX = 0.01
SCORE_ATOL = 1e-4
# Keys that change sizes or training only, not which ops the exported graph holds.
SIZE_KEYS = {'depth', 'gc_ratio', 'norm_type', 'freeze_norm', 'freeze_at', 'num_classes',
             'rpn_target_assign', 'train_proposal', 'bbox_assigner', 'mask_assigner',
             'bbox_loss', 'lr_mult_list', 'pretrained',
             # GC on/off and add/mul: exported and compared on the ResNet-vd rows
             'gc_stages', 'gc_fusion_types', 'gc_pooling_type'}


def config_files():
    return sorted(os.path.relpath(p, ZOO)[:-4]
                  for p in glob.glob(os.path.join(ZOO, '**', '*.yml'), recursive=True)
                  if '_base_' not in p and not p.endswith('shapes_instance.yml'))


def _plain(value, key=None):
    """A merged config section as structure only: numbers become their type, number lists
    'numbers' (or [] when empty), grouped convolution a flag."""
    if isinstance(value, dict):
        return {k: _plain(v, k) for k, v in sorted(value.items()) if k not in SIZE_KEYS}
    if key == 'groups':
        return 'grouped' if value > 1 else 'plain'
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return 'numbers' if value else []
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return type(value).__name__
    if hasattr(value, '__dict__'):
        return {'class': type(value).__name__, **_plain({k: v for k, v in vars(value).items()
                                                          if not k.startswith('_')})}
    return repr(value)


def structure(cfg):
    """The model-defining part of a merged ppdet config, sizes set aside."""
    sections = {}

    def walk(name):
        if name in sections or name not in cfg:
            return
        section = cfg[name]
        sections[name] = _plain(section) if isinstance(section, dict) else repr(section)
        if isinstance(section, dict):  # into the components it names, training-only ones aside
            for key, value in section.items():
                if key not in SIZE_KEYS and isinstance(value, str) and value in cfg:
                    walk(value)

    walk(cfg.architecture)
    return json.dumps({'architecture': cfg.architecture, **sections}, sort_keys=True)


class FreshConfigs:
    """ppdet's config registry is process-global: restore it before each load."""

    def __init__(self):
        import ppdet_gcnet  # noqa: F401
        from ppdet.core import workspace
        self.workspace = workspace
        self.registry = {k: copy.copy(v) for k, v in workspace.global_config.items()}

    def load(self, path):
        from ppdet.core.workspace import load_config
        self.workspace.global_config.clear()
        self.workspace.global_config.update({k: copy.copy(v) for k, v in self.registry.items()})
        return load_config(path)


def test_every_config_has_a_tested_structure():
    configs = FreshConfigs()
    tested = {structure(configs.load(os.path.join(ZOO, name + '.yml'))): name
              for name in list(REPRESENTATIVES) + list(TESTED_ELSEWHERE)}
    assert len(tested) == len(REPRESENTATIVES) + len(TESTED_ELSEWHERE)  # all distinct
    files = config_files()
    assert len(files) == 29  # 24 zoo rows (19 mmdetection, 3 seed, 2 box-only), 2 legacy, 3 shapes
    untested = [name for name in files
                if structure(configs.load(os.path.join(ZOO, name + '.yml'))) not in tested]
    assert not untested


@pytest.fixture(scope='module')
def exports(shapes_dataset, tmp_path_factory):
    """{row: export dir}: each representative shrunk, calibrated random weights, exported."""
    import paddle
    from paddle.utils import unique_name
    from ppdet.core.workspace import create
    from ppdet_gcnet.deploy.export import calibrate_batch_norm
    from ppdet_gcnet.deploy.export import export_model
    from test_deploy_fixtures import preprocessed
    from test_zoo_smoke import write_smoke_config
    image = os.path.join(shapes_dataset, 'val', sorted(os.listdir(
        os.path.join(shapes_dataset, 'val')))[0])
    inputs = {k: paddle.to_tensor(v) for k, v in preprocessed(image).items()}
    configs = FreshConfigs()
    out = {}
    for row, depth in REPRESENTATIVES.items():
        work = tmp_path_factory.mktemp('row')
        path = write_smoke_config(row, depth, shapes_dataset, work)
        if row == LEGACY:
            with open(path, 'a') as handle:
                handle.write(LEGACY_SMOKE)
        cfg = configs.load(path)
        cfg['norm_type'] = 'bn'  # as tools/export_model.py: no SyncBN in inference
        paddle.seed(3)
        with unique_name.guard():
            model = create(cfg.architecture)
        calibrate_batch_norm(model, inputs)
        if row == LEGACY:
            LEGACY_DYGRAPH.update(legacy_dygraph_detections(model, shapes_dataset))
            # also with the masks pasted in the graph (the legacy paste's ONNX form)
            export_model(cfg, copy.deepcopy(model), str(work / 'pasted'), onnx=True)
            paddle.disable_static()
            out[LEGACY + ':pasted'] = str(work / 'pasted')
        out[row] = str(work / 'export')
        export_model(cfg, model, out[row], raw_masks=True, onnx=True)
        paddle.disable_static()
    return out


# The legacy row reduced as the others (its RPN is the legacy one), with the legacy reader.
_LEGACY_READER = """  sample_transforms:
  - Decode: {}
  - LegacyNormalizeImage: {is_scale: true, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
  - LegacyResize: {target_size: [128, 128], interp: 1}
  - Permute: {}
  batch_transforms:
  - PadBatch: {pad_to_stride: 32}
"""
LEGACY_SMOKE = ("LegacyRPNHead:\n  test_proposal: {pre_nms_top_n: 200, post_nms_top_n: 64, "
                "min_size: 0.0, nms_thresh: 0.7}\n"
                f"TestReader:\n{_LEGACY_READER}EvalReader:\n{_LEGACY_READER}")
LEGACY_DYGRAPH = {}  # val image name: the dygraph legacy model's bbox, masks


def legacy_dygraph_detections(model, dataset):
    """The dygraph legacy model on each val image through the model-side legacy reader."""
    import paddle
    from ppdet.data.transform.batch_operators import PadBatch
    from ppdet.data.transform.operators import Decode, Permute
    from ppdet_gcnet.legacy.reader import LegacyNormalizeImage, LegacyResize
    val = os.path.join(dataset, 'val')
    found = {}
    for name in sorted(os.listdir(val)):
        sample = {'im_file': os.path.join(val, name)}
        for op in (Decode(), LegacyNormalizeImage(mean=[0.485, 0.456, 0.406],
                                                  std=[0.229, 0.224, 0.225]),
                   LegacyResize(target_size=[128, 128], interp=1), Permute()):
            sample = op(sample)
        sample = PadBatch(pad_to_stride=32)([sample])[0]
        with paddle.no_grad():
            result = model({k: paddle.to_tensor(sample[k][None])
                            for k in ('image', 'im_shape', 'scale_factor')})
        found[name] = (result['bbox'].numpy(), result['mask'].numpy())
    return found


def detector(model_dir, backend):
    from deploy.python import infer
    from deploy.python.model_files import load_model_files
    from deploy.python.predictor import PredictorOptions
    return infer.Detector(load_model_files(model_dir, backend), PredictorOptions(backend=backend))


@pytest.mark.parametrize('row', list(REPRESENTATIVES))
def test_onnx_backends_run_every_structure(exports, shapes_dataset, row):
    from deploy.python.image_io import read_image_rgb
    val = os.path.join(shapes_dataset, 'val')
    images = [read_image_rgb(os.path.join(val, name)) for name in sorted(os.listdir(val))]
    reference = detector(exports[row], 'paddle')
    for backend in ('onnxruntime', 'openvino'):
        candidate = detector(exports[row], backend)
        for image in images:
            (want,) = reference.predict([image], 0.0)
            (got,) = candidate.predict([image], 0.0)
            assert len(want['scores']) > 1, "calibrated random weights give detections"
            np.testing.assert_array_equal(got['class_ids'], want['class_ids'])
            np.testing.assert_allclose(got['scores'], want['scores'], atol=SCORE_ATOL)
            np.testing.assert_allclose(got['boxes'], want['boxes'], atol=BOX_ATOL_PX)
            if want['masks'] is not None:
                assert (got['masks'] != want['masks']).mean() < 1e-3


def test_deploy_gives_the_dygraph_legacy_detections(exports, shapes_dataset):
    from deploy.python.image_io import read_image_rgb
    with open(os.path.join(exports[LEGACY], 'infer_cfg.yml')) as handle:
        infer_cfg = handle.read()
    assert 'pipeline: legacy' in infer_cfg and 'LegacyResize' in infer_cfg
    paddle_backend = detector(exports[LEGACY], 'paddle')
    val = os.path.join(shapes_dataset, 'val')
    for name, (bbox, masks) in LEGACY_DYGRAPH.items():
        (got,) = paddle_backend.predict([read_image_rgb(os.path.join(val, name))], 0.0)
        assert len(bbox) > 10
        np.testing.assert_array_equal(got['class_ids'], bbox[:, 0])
        np.testing.assert_allclose(got['scores'], bbox[:, 1], atol=SCORE_ATOL)
        np.testing.assert_allclose(got['boxes'], bbox[:, 2:], atol=BOX_ATOL_PX)
        assert got['masks'].shape == masks.shape and masks.sum() > 1000
        assert (got['masks'] != masks).mean() < 1e-3


def test_legacy_masks_pasted_in_the_graph(exports, shapes_dataset):
    # the export without --raw_masks: every backend gives the raw-mask export's detections
    from deploy.python.image_io import read_image_rgb
    val = os.path.join(shapes_dataset, 'val')
    images = [read_image_rgb(os.path.join(val, name)) for name in sorted(os.listdir(val))]
    reference = detector(exports[LEGACY], 'paddle')
    for backend in ('paddle', 'onnxruntime', 'openvino'):
        candidate = detector(exports[LEGACY + ':pasted'], backend)
        for image in images:
            (want,) = reference.predict([image], 0.0)
            (got,) = candidate.predict([image], 0.0)
            np.testing.assert_array_equal(got['class_ids'], want['class_ids'])
            np.testing.assert_allclose(got['boxes'], want['boxes'], atol=BOX_ATOL_PX)
            assert got['masks'].shape == want['masks'].shape
            assert (got['masks'] != want['masks']).mean() < 1e-3
