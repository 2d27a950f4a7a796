"""Bad and unusual input for deploy: image files of every odd kind, broken model directories,
options the machine cannot honour. Each gives a correct result or one clear DeployError."""
import os
import shutil

import numpy as np
import pytest

from deploy.python import cpu_features, image_io
from deploy.python.errors import DeployError
from deploy.python.image_io import list_images, read_image_rgb
from deploy.python.model_files import load_model_files
from deploy.python.predictor import PredictorOptions, create_predictor
from tests.test_deploy_fixtures import (deploy_model, dygraph_model, random_rgb,  # noqa: F401
                                        shapes_image, write_image)


def test_color_jpeg_is_rgb(tmp_path):
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's BGR order
    image = read_image_rgb(write_image(tmp_path / 'blue.png', bgr))
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert (image[..., 2] == 255).all() and not image[..., :2].any()


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    image = read_image_rgb(write_image(tmp_path / 'grey.png', grey))
    assert image.shape == (8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], grey)


def test_rgba_is_composited_on_white(tmp_path):
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 2] = 200            # red
    bgra[:2, :, 3] = 255          # top half opaque, bottom half transparent
    image = read_image_rgb(write_image(tmp_path / 'rgba.png', bgra))
    np.testing.assert_array_equal(image[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(image[3, 0], [255, 255, 255])


def test_grey_alpha_png(tmp_path):
    from PIL import Image
    data = np.zeros((4, 4, 2), np.uint8)
    data[..., 0] = 50
    data[:, :2, 1] = 255
    path = str(tmp_path / 'la.png')
    Image.fromarray(data, mode='LA').save(path)
    image = read_image_rgb(path)
    np.testing.assert_array_equal(image[0, 0], [50, 50, 50])
    np.testing.assert_array_equal(image[0, 3], [255, 255, 255])


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    deep = np.full((4, 4, 3), 65535, np.uint16)
    deep[0, 0] = 0
    deep[0, 1] = 32896  # 128.5 / 255 of the range
    image = read_image_rgb(write_image(tmp_path / 'deep.png', deep))
    assert image.dtype == np.uint8
    assert image[1, 1, 0] == 255 and image[0, 0, 0] == 0 and image[0, 1, 0] == 128


def test_one_pixel_image(tmp_path):
    image = read_image_rgb(write_image(tmp_path / 'dot.png', np.full((1, 1, 3), 7, np.uint8)))
    assert image.shape == (1, 1, 3)


@pytest.mark.parametrize('content, reason', [
    (b'', 'empty'),
    (b'this is not an image at all', 'not a decodable image'),
    (b'\xff\xd8\xff\xe0' + bytes(200), 'not a decodable image'),  # JPEG magic, garbage after
])
def test_undecodable_files_are_refused(tmp_path, content, reason):
    path = tmp_path / 'bad.jpg'
    path.write_bytes(content)
    with pytest.raises(DeployError, match=reason) as info:
        read_image_rgb(str(path))
    assert str(path) in str(info.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DeployError, match='no such image file'):
        read_image_rgb(str(tmp_path / 'nope.jpg'))


def test_images_over_the_pixel_limit_are_refused(tmp_path, monkeypatch):
    path = write_image(tmp_path / 'big.png', random_rgb(40, 50))
    monkeypatch.setattr(image_io, 'MAX_PIXELS', 1999)
    with pytest.raises(DeployError, match='50x40 pixels is over the 1999 pixel limit'):
        read_image_rgb(path)


def test_image_dir_lists_images_and_reports_the_rest(tmp_path):
    write_image(tmp_path / 'b.png', random_rgb(8, 8))
    write_image(tmp_path / 'a.jpg', random_rgb(8, 8))
    (tmp_path / 'notes.txt').write_text('hello')
    (tmp_path / 'sub').mkdir()
    images, skipped = list_images(image_dir=str(tmp_path))
    assert [os.path.basename(p) for p in images] == ['a.jpg', 'b.png']
    assert [os.path.basename(p) for p in skipped] == ['notes.txt']
    (tmp_path / 'a.jpg').unlink(), (tmp_path / 'b.png').unlink()
    with pytest.raises(DeployError, match='no image files'):
        list_images(image_dir=str(tmp_path))


def broken_copy(export_dir, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(export_dir, target)
    return target


@pytest.mark.parametrize('damage, message', [
    (lambda d: shutil.rmtree(d), 'no such directory'),
    (lambda d: (d / 'model.json').unlink(), 'no exported program'),
    (lambda d: (d / 'model.pdiparams').unlink(), 'model.pdiparams: missing'),
    (lambda d: (d / 'infer_cfg.yml').write_text(''), 'infer_cfg.yml: file is empty'),
    (lambda d: (d / 'infer_cfg.yml').write_text('a: [1, 2'), 'not valid YAML'),
    (lambda d: (d / 'infer_cfg.yml').write_text('mode: paddle\n'), "no 'Preprocess' list"),
    (lambda d: (d / 'infer_cfg.yml').write_text(
        (d / 'infer_cfg.yml').read_text() + 'mask_threshold: 1.5\n'),
     'mask_threshold 1.5 must be a number between 0 and 1'),
], ids=['no_dir', 'no_program', 'no_params', 'empty_cfg', 'bad_yaml', 'no_preprocess',
        'bad_mask_threshold'])
def test_incomplete_model_dir_is_refused(deploy_model, tmp_path, damage, message):
    target = broken_copy(deploy_model[2], tmp_path, 'model')
    damage(target)
    with pytest.raises(DeployError, match=message):
        load_model_files(str(target))


@pytest.mark.parametrize('file_name, keep_bytes, message', [
    ('model.pdiparams', 100000, 'cannot load the model'),
    ('model.json', 5000, 'cannot load the model'),
], ids=['truncated_params', 'truncated_program'])
def test_truncated_model_files_are_refused(deploy_model, tmp_path, file_name, keep_bytes,
                                           message):
    target = broken_copy(deploy_model[2], tmp_path, 'model')
    data = (target / file_name).read_bytes()
    (target / file_name).write_bytes(data[:keep_bytes])
    with pytest.raises(DeployError, match=message):
        create_predictor(load_model_files(str(target)), PredictorOptions())


@pytest.mark.parametrize('options, message', [
    (dict(device='TPU'), "--device 'TPU'"),
    (dict(run_mode='trt_fp16'), 'TensorRT needs --device GPU'),
    (dict(device='GPU'), 'no CUDA support'),
    (dict(cpu_threads=0), '--cpu_threads 0'),
    (dict(enable_mkldnn_bfloat16=True), 'needs --enable_mkldnn'),
], ids=['device', 'trt_on_cpu', 'gpu_without_cuda', 'threads', 'bf16_without_onednn'])
def test_unusable_options_are_refused(deploy_model, options, message):
    with pytest.raises(DeployError, match=message):
        create_predictor(load_model_files(deploy_model[2]), PredictorOptions(**options))


def test_bf16_is_refused_on_a_cpu_without_it(deploy_model, monkeypatch):
    monkeypatch.setattr(cpu_features, 'cpu_flags', lambda: {'avx512f'})
    with pytest.raises(DeployError, match='neither AVX512-BF16 nor AMX-BF16'):
        create_predictor(load_model_files(deploy_model[2]),
                         PredictorOptions(enable_mkldnn=True, enable_mkldnn_bfloat16=True))


def test_onednn_refuses_interp_models_and_runs_them_once_rewritten(tmp_path):
    """The root cause, on a bare FPN: its `nearest_interp` is refused up front for oneDNN (Paddle
    itself would fail with ConvertPirAttribute2RuntimeAttribute ... DoubleAttribute); after
    `make_onednn_safe` the same weights run on oneDNN and give the dygraph result."""
    import paddle
    from paddle.static import InputSpec
    from ppdet.modeling.necks.fpn import FPN
    from ppdet_gcnet.deploy import make_onednn_safe
    from deploy.python.model_files import ModelFiles

    class Neck(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fpn = FPN(in_channels=[4, 8], out_channel=4, spatial_scales=[1 / 4, 1 / 8])

        def forward(self, a, b):
            return self.fpn([a, b])[0]

    paddle.seed(0)
    neck = Neck()
    neck.eval()
    a, b = np.random.rand(1, 4, 16, 16).astype('float32'), np.random.rand(1, 8, 8, 8)
    b = b.astype('float32')
    expected = neck(paddle.to_tensor(a), paddle.to_tensor(b)).numpy()
    spec = [InputSpec([None, 4, None, None], 'float32', 'a'),
            InputSpec([None, 8, None, None], 'float32', 'b')]

    def export(name):
        path = str(tmp_path / name / 'model')
        paddle.jit.save(paddle.jit.to_static(neck, input_spec=spec, full_graph=True), path)
        return ModelFiles(str(tmp_path / name), path + '.json', path + '.pdiparams', {})

    plain = export('plain')
    with pytest.raises(DeployError, match='nearest_interp'):
        create_predictor(plain, PredictorOptions(enable_mkldnn=True))
    make_onednn_safe(neck)
    predictor = create_predictor(export('safe'), PredictorOptions(enable_mkldnn=True))
    out = predictor.run_arrays({'a': a, 'b': b})[0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
