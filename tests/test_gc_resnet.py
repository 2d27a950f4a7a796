import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from ppdet.modeling.backbones.resnet import ResNet

from ppdet_gcnet import GCConfigError, GCResNet
from ppdet_gcnet.pretrained import load_pretrained_weights


def _gc_overhead(stage_channels_and_counts, ratio=1 / 16):
    """Parameters added by GC blocks, counted from the block's definition (att, add)."""
    total = 0
    for channels, count in stage_channels_and_counts:
        planes = int(channels * ratio)
        per_block = (channels + 1) + (channels * planes + planes) + 2 * planes \
            + (planes * channels + channels)
        total += count * per_block
    return total


def _gc_param_names(model):
    return [k for k in model.state_dict() if '.gc_block.' in k]


def test_r50_c3_c5_has_13_blocks_on_the_last_conv_norm():
    model = GCResNet(depth=50, variant='d', gc_stages=[1, 2, 3])
    assert len(model.gc_blocks) == 4 + 6 + 3
    for stage in (0, 1, 2, 3):
        for block in model.res_layers[stage].blocks:
            has_gc = 'gc_block' in dict(block.named_children())
            assert has_gc == (stage > 0)
            if has_gc:
                assert block.gc_block.in_channels == block.branch2c.conv._out_channels
                assert len(block.branch2c._forward_post_hooks) == 1


def test_gc_sits_after_last_conv_norm_before_shortcut_add():
    """Recompute one bottleneck by hand: relu(gc(branch2c(branch2b(branch2a(x)))) + short(x))."""
    paddle.seed(0)
    model = GCResNet(depth=50, variant='d', gc_stages=[1], freeze_norm=False,
                     gc_fusion_types=['channel_mul', 'channel_add'])
    model.eval()
    rng = np.random.RandomState(0)
    for p in model.gc_blocks[0].parameters():
        p.set_value(rng.normal(0, 0.3, size=p.shape).astype('float32'))
    bottleneck = model.res_layers[1].blocks[0]
    x = paddle.randn([1, 256, 16, 16])
    residual = bottleneck.branch2c.conv(bottleneck.branch2b(bottleneck.branch2a(x)))
    residual = bottleneck.branch2c.norm(residual)
    expected = F.relu(bottleneck.gc_block(residual) + bottleneck.short(x))
    got = bottleneck(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # and the GC block does change this output
    plain = F.relu(residual + bottleneck.short(x))
    assert np.abs(plain.numpy() - got.numpy()).max() > 1e-3


def test_zero_init_add_matches_plain_resnet():
    paddle.seed(0)
    plain = ResNet(depth=50, variant='d')
    gc = GCResNet(depth=50, variant='d')
    gc.set_dict(plain.state_dict())
    plain.eval(), gc.eval()
    x = {'image': paddle.randn([1, 3, 64, 64])}
    for a, b in zip(plain(x), gc(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_parameter_overhead_matches_paper():
    plain = sum(p.size for p in ResNet(depth=50, variant='d').parameters())
    gc_model = GCResNet(depth=50, variant='d')
    added = sum(p.size for p in gc_model.parameters()) - plain
    assert added == _gc_overhead([(512, 4), (1024, 6), (2048, 3)])
    assert 2.4e6 < added < 2.6e6  # paper: 44.4M -> 46.9M for Mask R-CNN R50-FPN


def test_non_gc_names_equal_resnet_names_and_pretrained_loads(tmp_path):
    paddle.seed(3)
    plain = ResNet(depth=50, variant='d')
    gc_model = GCResNet(depth=50, variant='d')
    gc_names = set(_gc_param_names(gc_model))
    assert set(gc_model.state_dict()) - gc_names == set(plain.state_dict())
    path = str(tmp_path / 'ResNet50_vd_pretrained.pdparams')
    paddle.save(plain.state_dict(), path)
    missing = load_pretrained_weights(gc_model, path)
    assert set(missing) == gc_names
    for name, value in plain.state_dict().items():
        np.testing.assert_array_equal(gc_model.state_dict()[name].numpy(), value.numpy())


def test_basic_block_depths_put_gc_on_branch2b():
    model = GCResNet(depth=18, variant='d', gc_stages=[1, 2, 3])
    assert len(model.gc_blocks) == 6
    block = model.res_layers[3].blocks[0]
    assert len(block.branch2b._forward_post_hooks) == 1
    assert block.gc_block.in_channels == 512
    out = model({'image': paddle.randn([1, 3, 64, 64])})
    assert out[3].shape == [1, 512, 2, 2]


def test_frozen_stage_keeps_its_gc_blocks_frozen():
    model = GCResNet(depth=50, variant='d', freeze_at=1, gc_stages=[1, 2])
    assert all(p.stop_gradient for p in model.res_layers[1].blocks[0].gc_block.parameters())
    assert not any(p.stop_gradient for p in model.res_layers[2].blocks[0].gc_block.parameters())


@pytest.mark.parametrize('kwargs,needle', [
    ({'gc_stages': [4]}, "GCResNet.gc_stages: 4 is out of range"),
    ({'gc_stages': [-1]}, "GCResNet.gc_stages: -1 is out of range"),
    ({'gc_stages': [1, 1]}, "repeats a stage"),
    ({'gc_stages': 'c3'}, "GCResNet.gc_stages: 'c3'"),
    ({'gc_stages': [3], 'num_stages': 3}, "GCResNet.gc_stages: 3 is out of range"),
    ({'gc_pooling_type': 'max'}, "GCResNet.gc_pooling_type: 'max' is not supported"),
    ({'gc_fusion_types': ['channel_sub']}, "GCResNet.gc_fusion_types: 'channel_sub'"),
    ({'gc_fusion_types': []}, "GCResNet.gc_fusion_types: []"),
    ({'gc_ratio': 0}, "GCResNet.gc_ratio: 0 is not allowed"),
    ({'gc_ratio': 1 / 1024}, "GCResNet.gc_ratio: 0.0009765625 gives 512"),
    ({'depth': 26}, "GCResNet.depth: 26 is not supported"),
    ({'variant': 'e'}, "GCResNet.variant: 'e' is not supported"),
])
def test_bad_values_raise_before_building(kwargs, needle):
    with pytest.raises(GCConfigError) as info:
        GCResNet.check_args(**kwargs)
    assert needle in str(info.value) and '\n' not in str(info.value)
    with pytest.raises(GCConfigError):
        GCResNet(**kwargs)
