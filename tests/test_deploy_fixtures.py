"""Shared, session-scoped fixtures of the deploy tests (imported by tests/test_deploy_*.py).

One small GC(add) Mask R-CNN (tests/configs/gc_r18_shapes.yml: ResNet18-vd, the shapes classes), random weights (seeded) with BatchNorm
statistics calibrated on the test image (untrained statistics let activations grow through 50
layers until every score saturates to 0 or 1), test resize 160 px, NMS forced to keep DETECTIONS boxes so
parity compares real boxes and masks, exported once.
"""
import os

import numpy as np
import pytest

# A fixed small GC(add) config on the shapes dataset (not the quickstart's, whose recipe changes).
SHAPES_CONFIG = 'tests/configs/gc_r18_shapes.yml'
TEST_SIZE = 160
DETECTIONS = 12
LABELS = ['circle', 'square', 'triangle']


def build_model(repo_root, image, seed=0):
    """`image`: the preprocessed NCHW float32 image the model is calibrated on."""
    import paddle
    import ppdet_gcnet  # noqa: F401  (registers GCResNet, applies compat)
    from ppdet.core.workspace import create, load_config
    from ppdet_gcnet.deploy.export import calibrate_batch_norm, force_detections
    cfg = load_config(os.path.join(repo_root, SHAPES_CONFIG))
    for transform in cfg['TestReader']['sample_transforms']:
        if 'Resize' in transform:
            transform['Resize']['target_size'] = [TEST_SIZE, TEST_SIZE]
    paddle.seed(seed)
    model = create(cfg.architecture)
    inputs = model_inputs_for(image)
    calibrate_batch_norm(model, inputs)
    force_detections(model, DETECTIONS)
    center_mask_logits(model, inputs)
    return cfg, model


def center_mask_logits(model, inputs):
    """Shift the mask logits' bias by their median on one image: about half of each mask is then
    foreground, so parity is checked along many mask boundaries rather than on empty masks."""
    import paddle
    logits_layer = model.mask_head.mask_fcn_logits
    captured = []
    hook = logits_layer.register_forward_post_hook(lambda layer, x, y: captured.append(y))
    with paddle.no_grad():
        model(inputs)
    hook.remove()
    median = paddle.to_tensor(np.median(captured[0].numpy(), axis=(0, 2, 3)))
    logits_layer.bias.set_value(logits_layer.bias - median)


def preprocess_ops():
    from deploy.python.preprocess import build_preprocess
    return build_preprocess([
        {'type': 'Resize', 'target_size': [TEST_SIZE, TEST_SIZE], 'keep_ratio': True, 'interp': 2},
        {'type': 'NormalizeImage', 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
         'is_scale': True},
        {'type': 'Permute'}, {'type': 'PadStride', 'stride': 32}])


def preprocessed(image_path):
    """(NCHW image, im_shape [1, 2], scale_factor [1, 2]) as infer.py feeds the predictor."""
    from deploy.python.image_io import read_image_rgb
    from deploy.python.preprocess import preprocess_image
    image, info = preprocess_image(read_image_rgb(image_path), preprocess_ops())
    return {'image': image[None], 'im_shape': info['im_shape'][None],
            'scale_factor': info['scale_factor'][None]}


def model_inputs_for(arrays):
    import paddle
    return {k: paddle.to_tensor(v) for k, v in arrays.items()}


def export_copy(repo_root, tmp_path_factory, image, model, name, raw_masks):
    from ppdet_gcnet.deploy.export import export_model
    export_dir = str(tmp_path_factory.mktemp('export') / name)
    cfg, exported = build_model(repo_root, image)
    exported.set_state_dict(model.state_dict())
    export_model(cfg, exported, export_dir, raw_masks=raw_masks, label_list=LABELS)
    return export_dir


@pytest.fixture(scope='session')
def dygraph_model(repo_root, shapes_image):
    """(cfg, dygraph model, preprocessed test image); the model keeps ppdet's own FPN,
    LayerNorm and mask pasting."""
    image = preprocessed(shapes_image)
    cfg, model = build_model(repo_root, image)
    return cfg, model, image


@pytest.fixture(scope='session')
def deploy_model(repo_root, tmp_path_factory, dygraph_model):
    """(cfg, dygraph model, export dir) of the default export: masks output raw (`mask_output:
    raw`), pasted by deploy."""
    cfg, model, image = dygraph_model
    return cfg, model, export_copy(repo_root, tmp_path_factory, image, model, 'gc_add_raw', True)


@pytest.fixture(scope='session')
def pasted_mask_model(repo_root, tmp_path_factory, dygraph_model):
    """The same weights exported with PaddleDetection's in-graph mask pasting."""
    cfg, model, image = dygraph_model
    return cfg, model, export_copy(repo_root, tmp_path_factory, image, model, 'gc_add_pasted',
                                   False)


@pytest.fixture(scope='session')
def shapes_image(shapes_dataset):
    """A generated 128x128 JPEG with shapes on it."""
    val = os.path.join(shapes_dataset, 'val')
    return os.path.join(val, sorted(os.listdir(val))[0])


def write_image(path, array, params=None):
    import cv2
    assert cv2.imwrite(str(path), array, params or []), path
    return str(path)


def random_rgb(height, width, seed=0):
    return (np.random.RandomState(seed).rand(height, width, 3) * 255).astype(np.uint8)


@pytest.fixture(scope='session')
def onnx_model(repo_root, tmp_path_factory, dygraph_model):
    """The same weights exported with raw masks and `model.onnx` (one image per run)."""
    from ppdet_gcnet.deploy.export import export_model
    cfg, model, image = dygraph_model
    cfg, exported = build_model(repo_root, image)
    exported.set_state_dict(model.state_dict())
    export_dir = str(tmp_path_factory.mktemp('export') / 'gc_add_onnx')
    export_model(cfg, exported, export_dir, raw_masks=True, onnx=True, label_list=LABELS)
    return cfg, model, export_dir
