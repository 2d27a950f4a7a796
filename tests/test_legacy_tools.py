"""tools/eval.py, infer.py and export_model.py with a legacy config and a folder of legacy
weights (the oracle's seeded weights written as Paddle 1.x per-variable files): the folder is
converted for the config, and evaluation writes the legacy detections of the fixture image."""
import json
import os
import shutil

import numpy as np
import pytest

from legacy_oracle import (IMAGE, config_path, fixture, legacy_arrays, legacy_reader_sample,
                           match_detections, meta, unpack_masks)
from test_weights_legacy_files import write_lod_tensor_folder
from tool_runner import run_tool

ROW = 'add'


def tiny_coco(root):
    """Two images (the fixture image and its mirror), 80 categories with ids 1..80 (so a legacy
    label is its category id), one polygon object each."""
    import cv2
    os.makedirs(os.path.join(root, 'val'))
    os.makedirs(os.path.join(root, 'annotations'))
    shutil.copy(IMAGE, os.path.join(root, 'val', 'a.png'))
    cv2.imwrite(os.path.join(root, 'val', 'b.png'), cv2.imread(IMAGE)[:, ::-1])
    height, width = meta()['image_hw']
    poly = [10, 10, 60, 10, 60, 50, 10, 50]
    images = [{'id': i + 1, 'file_name': f, 'height': height, 'width': width}
              for i, f in enumerate(('a.png', 'b.png'))]
    annotations = [{'id': i + 1, 'image_id': i + 1, 'category_id': 1 + 7 * i, 'iscrowd': 0,
                    'bbox': [10, 10, 50, 40], 'area': 2000.0, 'segmentation': [poly]}
                   for i in range(2)]
    categories = [{'id': c, 'name': f'class{c}', 'supercategory': 'x'} for c in range(1, 81)]
    with open(os.path.join(root, 'annotations', 'instances_val.json'), 'w') as handle:
        json.dump({'images': images, 'annotations': annotations, 'categories': categories},
                  handle)
    return root


@pytest.fixture(scope='module')
def legacy_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('legacy_tools')
    weights = write_lod_tensor_folder(str(tmp / 'mask_rcnn_r50_vd_fpn_gcb_add_r16_2x'),
                                      legacy_arrays(ROW))
    data = tiny_coco(str(tmp / 'coco'))
    size = meta()['sizes']['s160']
    config = tmp / 'legacy_tiny.yml'
    config.write_text(f"""_BASE_: [{config_path(ROW)!r}]
use_gpu: false
worker_num: 0
EvalReader:
  sample_transforms:
  - Decode: {{}}
  - LegacyNormalizeImage: {{is_scale: true, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}
  - LegacyResize: {{target_size: {size}, interp: 1}}
  - Permute: {{}}
TestReader:
  sample_transforms:
  - Decode: {{}}
  - LegacyNormalizeImage: {{is_scale: true, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}
  - LegacyResize: {{target_size: {size}, interp: 1}}
  - Permute: {{}}
EvalDataset:
  !COCODataSet
    image_dir: val
    anno_path: annotations/instances_val.json
    dataset_dir: {data}
TestDataset:
  !ImageFolder
    anno_path: annotations/instances_val.json
    dataset_dir: {data}
""")
    env = {'PPDET_GCNET_CACHE': str(tmp / 'cache')}
    return {'tmp': tmp, 'weights': weights, 'config': str(config), 'env': env}


def test_eval_with_legacy_folder_gives_legacy_detections(legacy_setup):
    tmp, out = legacy_setup['tmp'], legacy_setup['tmp'] / 'eval'
    result = run_tool('tools/eval.py', '-c', legacy_setup['config'], '--output_eval', str(out),
                      '-o', f"weights={legacy_setup['weights']}", env=legacy_setup['env'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'converting legacy' in result.stderr
    ref = fixture(f'{ROW}_s160')
    with open(out / 'bbox.json') as handle:
        boxes = [d for d in json.load(handle) if d['image_id'] == 1]
    # json: [x, y, w + 1, h + 1] (legacy widths), category id = legacy label here
    ours = np.array([[d['category_id'] - 1, d['score'], d['bbox'][0], d['bbox'][1],
                      d['bbox'][0] + d['bbox'][2] - 1, d['bbox'][1] + d['bbox'][3] - 1]
                     for d in boxes])
    where = match_detections(ref['bbox'], ours)
    assert len(ours) == 100 and (where >= 0).all()
    with open(out / 'mask.json') as handle:
        segms = [d for d in json.load(handle) if d['image_id'] == 1]
    import pycocotools.mask as mask_util
    masks = np.stack([mask_util.decode(d['segmentation']) for d in segms]).astype(bool)
    legacy_masks = unpack_masks(ref).astype(bool)
    ours_masks = masks[where]
    inter = (legacy_masks & ours_masks).sum(axis=(1, 2))
    union = (legacy_masks | ours_masks).sum(axis=(1, 2))
    assert np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)) >= 0.99


def test_infer_and_export_with_legacy_folder(legacy_setup):
    tmp, env = legacy_setup['tmp'], legacy_setup['env']
    weights = f"weights={legacy_setup['weights']}"
    result = run_tool('tools/infer.py', '-c', legacy_setup['config'], '--infer_img', IMAGE,
                      '--output_dir', str(tmp / 'infer'), '--save_results', '-o', weights,
                      env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp / 'infer' / 'image.png')
    result = run_tool('tools/export_model.py', '-c', legacy_setup['config'], '--output_dir',
                      str(tmp / 'export'), '-o', weights, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    exported = os.listdir(tmp / 'export' / 'legacy_tiny')
    assert 'infer_cfg.yml' in exported and any(f.endswith('.pdiparams') for f in exported)
    infer_cfg = (tmp / 'export' / 'legacy_tiny' / 'infer_cfg.yml').read_text()
    assert 'LegacyResize' in infer_cfg and 'LegacyNormalizeImage' in infer_cfg
    # the exported program (Paddle Inference) gives the legacy detections and masks
    from paddle import inference
    folder = str(tmp / 'export' / 'legacy_tiny')
    config = inference.Config(os.path.join(folder, 'model.json'),
                              os.path.join(folder, 'model.pdiparams'))
    config.disable_mkldnn()
    predictor = inference.create_predictor(config)
    sample = legacy_reader_sample('s160')
    for name in predictor.get_input_names():
        value = sample[name][None].astype('float32')
        handle = predictor.get_input_handle(name)
        handle.reshape(value.shape)
        handle.copy_from_cpu(value)
    predictor.run()
    outputs = [predictor.get_output_handle(n).copy_to_cpu()
               for n in predictor.get_output_names()]
    ref = fixture(f'{ROW}_s160')
    where = match_detections(ref['bbox'], outputs[0])
    assert (where >= 0).all()
    masks = next(o for o in outputs if o.ndim == 3)
    assert (masks[where].astype(bool) != unpack_masks(ref).astype(bool)).mean() < 1e-3


def test_onnx_export_and_deploy_give_legacy_detections(legacy_setup):
    """tools/export_model.py --onnx --raw_masks, then deploy/python/infer.py with ONNX Runtime
    (and OpenVINO through the same Detector): the 100 legacy detections, masks pasted by deploy
    the legacy way."""
    tmp, env = legacy_setup['tmp'], legacy_setup['env']
    result = run_tool('tools/export_model.py', '-c', legacy_setup['config'], '--output_dir',
                      str(tmp / 'onnx'), '--onnx', '--raw_masks', '-o',
                      f"weights={legacy_setup['weights']}", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = str(tmp / 'onnx' / 'legacy_tiny')
    ref = fixture(f'{ROW}_s160')
    legacy_masks = unpack_masks(ref).astype(bool)

    def assert_legacy(boxes, masks):
        where = match_detections(ref['bbox'], boxes)
        assert (where >= 0).all() and len(set(where.tolist())) == 100
        assert np.abs(boxes[where, 2:] - ref['bbox'][:, 2:]).max() <= 1e-3
        assert (masks[where].astype(bool) != legacy_masks).mean() < 1e-3

    result = run_tool('deploy/python/infer.py', '--model_dir', folder, '--image_file', IMAGE,
                      '--backend', 'onnxruntime', '--threshold', '0', '--save_results',
                      '--output_dir', str(tmp / 'deploy_ort'), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp / 'deploy_ort' / 'results.json') as handle:
        records = json.load(handle)['images'][0]['detections']
    import pycocotools.mask as mask_util
    boxes = np.array([[r['class_id'], r['score']] + r['bbox_xyxy'] for r in records])
    masks = np.stack([mask_util.decode(r['segmentation']) for r in records])
    where = match_detections(ref['bbox'], boxes)   # results.json rounds boxes to 0.01 px
    assert (where >= 0).all() and len(set(where.tolist())) == 100
    assert (masks[where].astype(bool) != legacy_masks).mean() < 1e-3

    from deploy.python import infer
    from deploy.python.image_io import read_image_rgb
    from deploy.python.model_files import load_model_files
    from deploy.python.predictor import PredictorOptions
    detector = infer.Detector(load_model_files(folder, 'openvino'),
                              PredictorOptions(backend='openvino'))
    (got,) = detector.predict([read_image_rgb(IMAGE)], 0.0)
    assert_legacy(np.concatenate([got['class_ids'][:, None], got['scores'][:, None],
                                  got['boxes']], axis=1), got['masks'])
