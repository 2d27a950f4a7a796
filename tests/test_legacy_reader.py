"""Legacy reader (normalise, then OpenCV-4.2 bilinear resize, pad to 32) against the tensors the
legacy reader itself produced from tests/fixtures/legacy/image.png (Paddle 1.8.5 oracle)."""
import numpy as np
import pytest

from legacy_oracle import fixture, legacy_reader_sample, meta


@pytest.mark.parametrize('size_name', ['s80', 's160', 's320'])
def test_preprocessed_tensor_matches_legacy_reader(size_name):
    ref = fixture(f'reader_{size_name}')
    sample = legacy_reader_sample(size_name)
    image = sample['image']
    assert list(image.shape[1:]) == ref['padded_hw'].tolist()
    if ref['image'].shape != image.shape:      # large size: every 7th pixel stored
        image = image[:, ::7, ::7]
    assert np.abs(image - ref['image']).max() <= 1e-5
    # im_info: legacy [resized h, resized w, scale] -> ppdet im_shape and scale_factor
    np.testing.assert_allclose(sample['im_shape'], ref['im_info_resize'][:2], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(sample['scale_factor'], [ref['im_info_resize'][2]] * 2)


def test_legacy_resize_scale_rule():
    """The legacy rule: target / short side unless the long side would round above max."""
    from ppdet_gcnet.legacy.reader import LegacyResize
    resize = LegacyResize(target_size=[800, 1333])
    assert resize.legacy_scale(600, 800) == 800 / 600
    # 800 / 500 * 833 = 1332.8 -> rounds to 1333: not above max, the short side rules
    assert resize.legacy_scale(500, 833) == 800 / 500
    # 800 / 500 * 834 = 1334.4 -> capped by the long side
    assert resize.legacy_scale(500, 834) == 1333 / 834
    assert meta()['sizes']['s80'] == [80, 128]


def test_opencv_differs_from_legacy_resize():
    """Why the resize is our own: this OpenCV's float bilinear differs from the legacy one,
    ours matches it (the fixture tensor is the legacy OpenCV 4.2 result)."""
    import cv2
    from ppdet_gcnet.legacy.reader import legacy_bilinear_resize
    rng = np.random.RandomState(0)
    image = rng.normal(0, 1, (37, 53, 3)).astype(np.float32)
    ours = legacy_bilinear_resize(image, 1.7)
    theirs = cv2.resize(image, None, None, fx=1.7, fy=1.7, interpolation=cv2.INTER_LINEAR)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-4     # same interpolation, rounding apart
