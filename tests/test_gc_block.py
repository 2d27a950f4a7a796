import itertools

import numpy as np
import paddle
import pytest

from ppdet_gcnet import GCConfigError, GlobalContextBlock
from reference_gc import gc_block_forward

COMBOS = list(itertools.product(
    ['att', 'avg'], [('channel_add', ), ('channel_mul', ), ('channel_mul', 'channel_add')]))


def _randomize(block, seed):
    rng = np.random.RandomState(seed)
    for param in block.parameters():
        param.set_value(rng.normal(0, 0.5, size=param.shape).astype('float32'))
    return {k: v.numpy() for k, v in block.state_dict().items()}


@pytest.mark.parametrize('pooling,fusions', COMBOS)
def test_forward_matches_numpy_reference(pooling, fusions):
    paddle.seed(0)
    block = GlobalContextBlock(32, ratio=1 / 8, pooling_type=pooling, fusion_types=fusions)
    params = _randomize(block, seed=len(pooling) + len(fusions))
    x = np.random.RandomState(3).normal(size=(2, 32, 5, 7)).astype('float32')
    got = block(paddle.to_tensor(x)).numpy()
    want = gc_block_forward(x, params, pooling, fusions)
    # the transform must actually change x, or the comparison proves nothing
    assert np.abs(want - x).max() > 1e-2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_add_fusion_is_identity_at_initialisation():
    paddle.seed(1)
    block = GlobalContextBlock(64, fusion_types=['channel_add'])
    x = paddle.randn([2, 64, 6, 6])
    np.testing.assert_array_equal(block(x).numpy(), x.numpy())


def test_mul_fusion_halves_input_at_initialisation():
    # last conv is zero, so the gate is sigmoid(0) = 0.5 everywhere
    block = GlobalContextBlock(64, fusion_types=['channel_mul'])
    x = paddle.randn([1, 64, 4, 4])
    np.testing.assert_allclose(block(x).numpy(), 0.5 * x.numpy(), rtol=1e-6)


def test_layout_and_initialisation():
    paddle.seed(2)
    block = GlobalContextBlock(1024, ratio=1 / 16, fusion_types=['channel_mul', 'channel_add'])
    shapes = {k: list(v.shape) for k, v in block.state_dict().items()}
    assert shapes == {
        'conv_mask.weight': [1, 1024, 1, 1], 'conv_mask.bias': [1],
        'channel_mul_conv.0.weight': [64, 1024, 1, 1], 'channel_mul_conv.0.bias': [64],
        'channel_mul_conv.1.weight': [64], 'channel_mul_conv.1.bias': [64],
        'channel_mul_conv.3.weight': [1024, 64, 1, 1], 'channel_mul_conv.3.bias': [1024],
        'channel_add_conv.0.weight': [64, 1024, 1, 1], 'channel_add_conv.0.bias': [64],
        'channel_add_conv.1.weight': [64], 'channel_add_conv.1.bias': [64],
        'channel_add_conv.3.weight': [1024, 64, 1, 1], 'channel_add_conv.3.bias': [1024],
    }
    for name in ('channel_add_conv', 'channel_mul_conv'):
        last = getattr(block, name)[3]
        assert not last.weight.numpy().any() and not last.bias.numpy().any()
    # Kaiming normal, fan-in: std = sqrt(2 / fan_in) = sqrt(2 / 1024)
    std = block.conv_mask.weight.numpy().std()
    assert abs(std - np.sqrt(2 / 1024)) < 0.1 * np.sqrt(2 / 1024)
    assert not block.conv_mask.bias.numpy().any()


def test_avg_pooling_has_no_attention_conv():
    block = GlobalContextBlock(16, ratio=0.25, pooling_type='avg')
    assert not hasattr(block, 'conv_mask') or block.conv_mask is None
    assert all(not k.startswith('conv_mask') for k in block.state_dict())


@pytest.mark.parametrize('kwargs,needle', [
    ({'pooling_type': 'max'}, "pooling_type: 'max'"),
    ({'fusion_types': ['channel_sub']}, "fusion_types: 'channel_sub'"),
    ({'fusion_types': []}, "fusion_types: []"),
    ({'ratio': 0}, "ratio: 0"),
    ({'ratio': -0.5}, "ratio: -0.5"),
    ({'ratio': 1 / 128}, "ratio: 0.0078125 gives"),
])
def test_bad_values_raise_one_clear_error(kwargs, needle):
    with pytest.raises(GCConfigError) as info:
        GlobalContextBlock(64, **kwargs)
    message = str(info.value)
    assert needle in message and '\n' not in message
