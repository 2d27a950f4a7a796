"""tools/export_model.py: a tiny GC Mask R-CNN exported through ppdet's Trainer loads in Paddle
Inference and gives the dygraph model's boxes, scores and masks on the same image, with plain
kernels (to float rounding) and with oneDNN (close)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import yaml

import ppdet_gcnet  # noqa: F401  (registers GCResNet, applies the fixes)
from deploy.python.model_files import load_model_files
from tiny_config import TINY_SIZE as SIZE, write_tiny_config

pytestmark = pytest.mark.ppdet  # runs PaddleDetection itself: in both test legs


def model_inputs(image_path, height=SIZE, width=SIZE):
    """The image as infer_cfg.yml's preprocessing makes it: RGB, resized to height x width,
    normalised, CHW; a batch of one, with the scale factor from the 128x128 original."""
    image = cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB)
    assert image.shape[:2] == (SIZE, SIZE)
    if (height, width) != (SIZE, SIZE):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    image = (image.astype('float32') / 255. - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return {'image': image.transpose(2, 0, 1)[None].astype('float32'),
            'im_shape': np.array([[height, width]], 'float32'),
            'scale_factor': np.array([[height / SIZE, width / SIZE]], 'float32')}


def run_inference(model_dir, inputs, onednn=False):
    from paddle import inference
    model_file = os.path.join(model_dir, 'model.json')
    if not os.path.isfile(model_file):
        model_file = os.path.join(model_dir, 'model.pdmodel')
    config = inference.Config(model_file, os.path.join(model_dir, 'model.pdiparams'))
    config.disable_gpu()
    if onednn:
        config.enable_mkldnn()
    else:
        config.disable_mkldnn()  # plain kernels: the reference the dygraph model must match
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    for name in predictor.get_input_names():
        predictor.get_input_handle(name).copy_from_cpu(inputs[name])
    predictor.run()
    return [predictor.get_output_handle(name).copy_to_cpu()
            for name in predictor.get_output_names()]


@pytest.fixture(scope='module')
def exported(repo_root, shapes_dataset, tmp_path_factory):
    """Random weights saved to a file, exported with the tool; plus the dygraph outputs."""
    from paddle.utils import unique_name
    from ppdet.core.workspace import load_config
    from ppdet.engine import Trainer
    work = tmp_path_factory.mktemp('export')
    # Up to 1000 proposals per image: fewer survive NMS, and different numbers per image, so a
    # batch has images with different proposal and detection counts.
    config = write_tiny_config(repo_root, shapes_dataset, str(work), test_proposals=1000)
    paddle.seed(7)
    with unique_name.guard():
        model = Trainer(load_config(config), mode='test').model
    weights = str(work / 'random_init')
    paddle.save(model.state_dict(), weights + '.pdparams')

    images = [os.path.join(shapes_dataset, 'val', name)
              for name in sorted(os.listdir(os.path.join(shapes_dataset, 'val')))]
    # As is, resized to 96x160 (non-unit scale factors: boxes are mapped back and clipped), and
    # the second image (for a batch of two).
    cases = [model_inputs(images[0]), model_inputs(images[0], height=96, width=160),
             model_inputs(images[1])]
    model.eval()
    with paddle.no_grad():
        eager = [{k: v.numpy() for k, v in model(
            {k: paddle.to_tensor(v) for k, v in inputs.items()}).items()} for inputs in cases]
        for inputs, outputs in zip(cases, eager):  # how many proposals each image gets
            tensors = {k: paddle.to_tensor(v) for k, v in inputs.items()}
            features = model.neck(model.backbone(tensors))
            outputs['proposals'] = int(model.rpn_head(features, tensors)[1][0])

    output_dir = work / 'inference'
    run = subprocess.run(
        [sys.executable, os.path.join(repo_root, 'tools', 'export_model.py'), '-c', config,
         '-o', f'weights={weights}', '--output_dir', str(output_dir)],
        cwd=str(work), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    model_dir = str(output_dir / 'tiny_gc')
    return model_dir, list(zip(cases, eager))


def test_export_writes_the_deploy_layout(exported):
    model_dir, _ = exported
    files = set(os.listdir(model_dir))
    assert 'model.pdiparams' in files and files & {'model.json', 'model.pdmodel'}
    with open(os.path.join(model_dir, 'infer_cfg.yml')) as f:
        infer_cfg = yaml.safe_load(f)
    assert infer_cfg['arch'] == 'RCNN' and infer_cfg['mask'] is True
    assert infer_cfg['label_list'] == ['circle', 'square', 'triangle']
    assert [step['type'] for step in infer_cfg['Preprocess']] == [
        'Resize', 'NormalizeImage', 'Permute', 'PadStride']


@pytest.mark.parametrize('case', [0, 1], ids=['128x128', '96x160-rescaled'])
def test_paddle_inference_matches_dygraph(exported, case):
    model_dir, cases = exported
    inputs, eager = cases[case]
    boxes, counts, masks = run_inference(model_dir, inputs)
    assert counts.tolist() == eager['bbox_num'].tolist()
    assert boxes.shape[0] > 1  # random weights still give detections above the threshold
    np.testing.assert_array_equal(boxes[:, 0], eager['bbox'][:, 0])  # classes
    np.testing.assert_allclose(boxes[:, 1], eager['bbox'][:, 1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(boxes[:, 2:], eager['bbox'][:, 2:], rtol=1e-5, atol=1e-4)
    assert boxes[:, 2:].max() <= SIZE  # in original-image coordinates
    assert masks.shape == eager['mask'].shape == (boxes.shape[0], SIZE, SIZE) and masks.any()
    assert (masks != eager['mask']).mean() < 1e-4  # binarised at 0.5: allow a stray edge pixel


@pytest.mark.parametrize('case', [0, 1], ids=['128x128', '96x160-rescaled'])
def test_onednn_inference_runs_and_matches_dygraph(exported, case):
    # oneDNN is Paddle Inference's CPU default; its fp32 kernels round differently, hence the
    # looser tolerances. Without the export's oneDNN-safe forms, create_predictor/run fails.
    model_dir, cases = exported
    inputs, eager = cases[case]
    boxes, counts, masks = run_inference(model_dir, inputs, onednn=True)
    assert counts.tolist() == eager['bbox_num'].tolist()
    np.testing.assert_array_equal(boxes[:, 0], eager['bbox'][:, 0])
    np.testing.assert_allclose(boxes[:, 1], eager['bbox'][:, 1], atol=1e-4)
    np.testing.assert_allclose(boxes[:, 2:], eager['bbox'][:, 2:], atol=1e-2)
    assert (masks != eager['mask']).mean() < 1e-3


def test_a_batch_gives_each_images_own_results(exported):
    # Images whose proposal and detection counts differ: per-image lists in the traced program
    # would have to join tensors of different sizes (see compat.pir_ragged_batches).
    model_dir, cases = exported
    (first, first_eager), (second, second_eager) = cases[0], cases[2]
    batch = {k: np.concatenate([first[k], second[k]]) for k in first}
    boxes, counts, masks = run_inference(model_dir, batch)
    assert counts.tolist() == [int(first_eager['bbox_num'][0]), int(second_eager['bbox_num'][0])]
    assert counts[0] != counts[1]
    assert first_eager['proposals'] != second_eager['proposals']
    expected = np.concatenate([first_eager['bbox'], second_eager['bbox']])
    np.testing.assert_array_equal(boxes[:, 0], expected[:, 0])
    np.testing.assert_allclose(boxes[:, 1:], expected[:, 1:], rtol=1e-5, atol=1e-4)
    expected_masks = np.concatenate([first_eager['mask'], second_eager['mask']])
    assert masks.shape == expected_masks.shape and (masks != expected_masks).mean() < 1e-4


def test_missing_weights_is_a_one_line_error(repo_root, tmp_path):
    run = subprocess.run(
        [sys.executable, os.path.join(repo_root, 'tools', 'export_model.py'), '-c',
         os.path.join(repo_root, 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml'),
         '-o', 'use_gpu=false', f'weights={tmp_path / "missing"}', '--output_dir', str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith('error: weights: ')
    assert not any(tmp_path.iterdir())


def test_raw_mask_export_runs_in_deploy_with_the_same_detections(exported, repo_root, tmp_path,
                                                                 shapes_dataset):
    # --raw_masks: the graph stops before mask pasting; deploy/python/infer.py pastes the kept
    # masks itself. Same boxes as the pasted-mask export, masks present in the results.
    model_dir, cases = exported
    weights = os.path.join(os.path.dirname(os.path.dirname(model_dir)), 'random_init')
    config = os.path.join(os.path.dirname(os.path.dirname(model_dir)), 'tiny_gc.yml')
    run = subprocess.run(
        [sys.executable, os.path.join(repo_root, 'tools', 'export_model.py'), '-c', config,
         '-o', f'weights={weights}', 'MaskPostProcess.binary_thresh=0.4',
         '--output_dir', str(tmp_path / 'raw'), '--raw_masks'],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    raw_dir = str(tmp_path / 'raw' / 'tiny_gc')
    with open(os.path.join(raw_dir, 'infer_cfg.yml')) as f:
        infer_cfg = yaml.safe_load(f)
    # deploy pastes the raw masks, so it must cut them where the config's MaskPostProcess would
    assert infer_cfg['mask_output'] == 'raw' and infer_cfg['mask_threshold'] == 0.4
    assert load_model_files(raw_dir).mask_threshold == 0.4
    boxes, counts, masks = run_inference(raw_dir, cases[0][0])
    assert counts.tolist() == cases[0][1]['bbox_num'].tolist()
    np.testing.assert_allclose(boxes, cases[0][1]['bbox'], rtol=1e-5, atol=1e-4)
    assert masks.shape[1:] == (28, 28) and masks.dtype == np.float32
    image = os.path.join(shapes_dataset, 'val', 'val_00000.jpg')
    run = subprocess.run(
        [sys.executable, os.path.join(repo_root, 'deploy', 'python', 'infer.py'), '--model_dir',
         raw_dir, '--image_file', image, '--threshold', '0', '--output_dir', str(tmp_path / 'out'),
         '--save_results'], cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / 'out' / 'results.json').is_file()
