"""ContextCapture: the maps it records are attention distributions, and it changes nothing."""
import numpy as np
import paddle
import pytest

from ppdet_gcnet import GCResNet
from ppdet_gcnet.analysis.context_capture import ContextCapture, NoGCBlockError


def _backbone(pooling='att', fusions=('channel_add', ), seed=0):
    paddle.seed(seed)
    backbone = GCResNet(depth=18, variant='d', norm_type='bn', freeze_at=-1,
                        gc_stages=[1, 2, 3], gc_ratio=1 / 16, gc_pooling_type=pooling,
                        gc_fusion_types=list(fusions))
    # Non-zero transforms, so the GC blocks really change the features.
    rng = np.random.RandomState(seed)
    for block in backbone.gc_blocks:
        for param in block.parameters():
            param.set_value(rng.normal(0, 0.3, size=param.shape).astype('float32'))
    backbone.eval()
    return backbone


def record_channels(backbone, record):
    return dict(backbone.named_sublayers())[record.name].in_channels


def _image(seed=1, size=(1, 3, 64, 96)):
    return paddle.to_tensor(np.random.RandomState(seed).normal(size=size).astype('float32'))


def test_maps_are_distributions_over_positions():
    backbone = _backbone()
    with ContextCapture(backbone) as capture, paddle.no_grad():
        backbone({'image': _image(size=(2, 3, 64, 96))})
    assert [r.name for r in capture.records] == \
        [name for name, layer in backbone.named_sublayers() if layer in backbone.gc_blocks]
    assert len(capture.records) == len(backbone.gc_blocks) == 6
    for record in capture.records:
        assert record.attention.shape == (2, ) + record.feature_hw
        assert (record.attention >= 0).all()
        np.testing.assert_allclose(record.attention.sum(axis=(1, 2)), 1.0, atol=1e-5)
        # a real map, not the uniform one
        assert record.attention.max() > 2.0 / np.prod(record.feature_hw)


def test_hooks_leave_outputs_bit_identical_and_are_removed():
    backbone = _backbone(fusions=('channel_mul', 'channel_add'))
    image = _image()
    with paddle.no_grad():
        plain = [t.numpy() for t in backbone({'image': image})]
        with ContextCapture(backbone) as capture:
            hooked = [t.numpy() for t in backbone({'image': image})]
        after = [t.numpy() for t in backbone({'image': image})]
    assert len(capture.records) == 6
    for a, b in zip(plain, hooked):
        assert np.array_equal(a, b)
    # the GC blocks matter here, so equality above is not vacuous
    baseline = _backbone(fusions=('channel_mul', 'channel_add'))
    for block in baseline.gc_blocks:
        for param in block.channel_add_conv[-1].parameters():
            param.set_value(np.zeros(param.shape, 'float32'))
    with paddle.no_grad():
        changed = baseline({'image': image})[-1].numpy()
    assert not np.array_equal(changed, plain[-1])
    # hooks are gone after the with block: nothing is recorded any more
    records_before = list(capture.records)
    with paddle.no_grad():
        backbone({'image': _image(seed=5)})
    assert capture.records == records_before
    for a, b in zip(plain, after):
        assert np.array_equal(a, b)


def test_each_forward_replaces_the_records():
    backbone = _backbone()
    with ContextCapture(backbone) as capture, paddle.no_grad():
        backbone({'image': _image(seed=1)})
        first = capture.records[0].attention.copy()
        backbone({'image': _image(seed=2)})
    assert len(capture.records) == 6
    assert not np.array_equal(first, capture.records[0].attention)


def test_avg_pooling_records_no_map_but_fusion_terms():
    backbone = _backbone(pooling='avg', fusions=('channel_mul', ))
    with ContextCapture(backbone) as capture, paddle.no_grad():
        backbone({'image': _image()})
    for record in capture.records:
        assert record.attention is None
        assert record.mul_term.shape == (1, record_channels(backbone, record))
        assert record.add_term is None


def test_model_without_gc_blocks_is_refused():
    with pytest.raises(NoGCBlockError, match='no GlobalContextBlock'):
        ContextCapture(paddle.nn.Conv2D(3, 4, 1))
