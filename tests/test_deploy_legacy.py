"""Deploy's legacy-pipeline preprocessing and raw-mask paste (deploy/python/legacy.py, NumPy, for
every backend) equal the model side's (ppdet_gcnet/legacy/: the reader operators and
`LegacyMaskPostProcess`): preprocessed tensors, im_shape and scale factors bit for bit on the
legacy fixture image at both oracle sizes; pasted masks equal pixel for pixel."""
import numpy as np
import pytest

from legacy_oracle import IMAGE, MEAN, STD, legacy_reader_sample, meta


def deploy_preprocess(image_rgb, target_size):
    from deploy.python.preprocess import build_preprocess, preprocess_image
    ops = build_preprocess([
        {'type': 'LegacyNormalizeImage', 'is_scale': True, 'mean': MEAN, 'std': STD},
        {'type': 'LegacyResize', 'target_size': target_size, 'interp': 1},
        {'type': 'Permute'}, {'type': 'PadStride', 'stride': 32}])
    return preprocess_image(image_rgb, ops)


@pytest.mark.parametrize('size_name', ['s160', 's320'])
def test_preprocessing_equals_the_legacy_reader(size_name):
    from deploy.python.image_io import read_image_rgb
    expected = legacy_reader_sample(size_name)
    image, info = deploy_preprocess(read_image_rgb(IMAGE), meta()['sizes'][size_name])
    assert image.shape == expected['image'].shape
    np.testing.assert_array_equal(image, expected['image'])
    np.testing.assert_array_equal(info['im_shape'], expected['im_shape'])
    np.testing.assert_array_equal(info['scale_factor'], expected['scale_factor'])


def test_long_side_rule_and_other_interpolations():
    from ppdet_gcnet.legacy.reader import LegacyResize as ModelResize
    from deploy.python.legacy import LegacyResize
    rng = np.random.RandomState(0)
    for height, width, target in [(480, 640, [800, 1333]), (427, 1000, [800, 1333]),
                                  (1000, 1999, [800, 1333]), (37, 23, [50, 60])]:
        image = rng.randn(height, width, 3).astype('float32')
        ours, info = LegacyResize(target)(image, {'scale_factor': np.ones(2, 'float32')})
        sample = ModelResize(target, interp=1)({'image': image.copy()})
        np.testing.assert_array_equal(ours, sample['image'])
        np.testing.assert_array_equal(info['im_shape'], sample['im_shape'])
        np.testing.assert_array_equal(info['scale_factor'], sample['scale_factor'])
    # uint8 or other interpolations: OpenCV, as the model side falls back to ppdet's Resize
    image = rng.randint(0, 255, (40, 50, 3)).astype('uint8')
    ours, _ = LegacyResize([20, 30], interp=2)(image, {'scale_factor': np.ones(2, 'float32')})
    sample = ModelResize([20, 30], interp=2)({'image': image.copy()})
    np.testing.assert_array_equal(ours, sample['image'])


def test_raw_mask_paste_equals_legacy_mask_post_process():
    import paddle
    from ppdet_gcnet.legacy.mask_paste import LegacyMaskPostProcess
    from deploy.python.legacy import paste_masks_legacy
    rng = np.random.RandomState(1)
    count, height, width = 60, 90, 120
    probabilities = rng.rand(count, 28, 28).astype('float32')
    x1, y1 = rng.uniform(-20, 110, count), rng.uniform(-20, 80, count)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, 60, count), y1 + rng.uniform(0, 50, count)],
                     1).astype('float32')
    boxes[:4] = [[10, 10, 10, 10], [0, 0, 119, 89], [-5.5, -3.2, 0.4, 0.7], [115, 85, 200, 150]]
    rows = np.concatenate([np.zeros((count, 2), 'float32'), boxes], 1)
    expected = LegacyMaskPostProcess()(paddle.to_tensor(probabilities), paddle.to_tensor(rows),
                                       paddle.to_tensor([count], 'int32'),
                                       paddle.to_tensor([[height, width]], 'float32')).numpy()
    ours = paste_masks_legacy(probabilities, boxes, height, width)
    assert expected.shape == ours.shape and expected.sum() > 10000
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize('op,message', [
    ({'type': 'LegacyResize', 'target_size': [0, 1333]}, 'LegacyResize.target_size'),
    ({'type': 'LegacyResize', 'target_size': [800, 1333], 'size': 3}, 'LegacyResize'),
    ({'type': 'LegacyNormalizeImage', 'mean': MEAN, 'std': STD, 'norm_type': 'none'},
     'LegacyNormalizeImage.norm_type'),
])
def test_bad_legacy_preprocessing_is_refused_in_one_line(op, message):
    from deploy.python.errors import DeployError
    from deploy.python.preprocess import build_preprocess
    with pytest.raises(DeployError, match=message) as error:
        build_preprocess([op])
    assert '\n' not in str(error.value)


def test_paste_positions_need_no_double_in_the_graph():
    # The model side's float32 integer quotient ((2d + 1) src - dst) / (2 dst) gives the same
    # bilinear taps as OpenCV 4.2's double position rounded to float32 (deploy's form), for every
    # box size up to 4000 pixels on the padded 28x28 map (and a 14x14 one). The positions
    # themselves are equal except where the exact one is 0 and double gives -5.6e-17 (a few
    # sizes): cell 0 with weight 1 either way.
    def taps(position, src):
        low = np.floor(position)
        interior = (low >= 0) & (low < src - 1)
        return np.clip(low, 0, src - 1), np.where(interior, position - low, 0)

    for src in (30, 16):
        dst = np.repeat(np.arange(1, 4001), np.arange(1, 4001))
        d = np.arange(len(dst)) - np.repeat(np.cumsum(np.arange(0, 4000)), np.arange(1, 4001))
        quotient = (((2 * d + 1) * src - dst).astype(np.float32)
                    / (2 * dst).astype(np.float32))
        double = ((d + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
        assert (quotient != double).sum() < 20 and (quotient[quotient != double] == 0).all()
        for ours, theirs in zip(taps(quotient, src), taps(double, src)):
            np.testing.assert_array_equal(ours, theirs)
