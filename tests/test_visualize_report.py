"""Report numbers of a GC block with hand-set weights equal the numbers worked out by hand."""
import math

import numpy as np
import paddle
import pytest

from ppdet_gcnet import GlobalContextBlock
from ppdet_gcnet.analysis.context_capture import ContextCapture
from ppdet_gcnet.analysis.context_report import block_report, entropy_ratio, top_share

# A 10 x 10 map, 4 channels. Channel 0 holds the attention logits: ln(101) at one position and
# 0 elsewhere, so softmax gives 101/200 there and 1/200 at the 99 others. Channels 1-3 are 2.0.
PEAK = (3, 7)
LOG_101 = math.log(101.0)
ADD_BIAS = [0.5, -1.0, 0.25, 2.0]
MUL_BIAS = [0.0, 1.0, -2.0, 3.0]


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def _input():
    x = np.full((1, 4, 10, 10), 2.0, 'float32')
    x[0, 0] = 0.0
    x[0, 0][PEAK] = LOG_101
    return paddle.to_tensor(x)


def _set_transform(transform, bias):
    """Last conv: zero weights and bias `bias`, so the transform outputs `bias` for any input."""
    last = transform[-1]
    last.weight.set_value(np.zeros(last.weight.shape, 'float32'))
    last.bias.set_value(np.array(bias, 'float32'))


def _block(pooling, fusions):
    block = GlobalContextBlock(4, ratio=0.5, pooling_type=pooling, fusion_types=fusions)
    if pooling == 'att':
        block.conv_mask.weight.set_value(np.array([1, 0, 0, 0], 'float32').reshape(1, 4, 1, 1))
        block.conv_mask.bias.set_value(np.zeros([1], 'float32'))
    if 'channel_add' in fusions:
        _set_transform(block.channel_add_conv, ADD_BIAS)
    if 'channel_mul' in fusions:
        _set_transform(block.channel_mul_conv, MUL_BIAS)
    block.eval()
    return block


def _report(pooling, fusions):
    holder = paddle.nn.Sequential(_block(pooling, fusions))
    with ContextCapture(holder) as capture, paddle.no_grad():
        output = holder(_input()).numpy()
    (record, ) = capture.records
    return block_report(record), record, output


# Worked out by hand from the input above.
P_PEAK, P_REST = 101 / 200, 1 / 200
HAND_ENTROPY = -(P_PEAK * math.log(P_PEAK) + 99 * P_REST * math.log(P_REST)) / math.log(100)
HAND_TOP1 = P_PEAK                                    # 1 % of 100 positions = the peak alone
HAND_X_MEAN = (LOG_101 + 3 * 100 * 2.0) / 400
HAND_ADD = (0.5 + 1.0 + 0.25 + 2.0) / 4 / HAND_X_MEAN
HAND_MUL = sum(abs(_sigmoid(b) - 0.5) for b in MUL_BIAS) / 4
# With both fusions the add term is added to x * sigmoid(t_mul), channel by channel.
HAND_MUL_X_MEAN = (_sigmoid(0.0) * LOG_101 + 100 * 2.0 * (_sigmoid(1.0) + _sigmoid(-2.0)
                                                          + _sigmoid(3.0))) / 400
HAND_ADD_AFTER_MUL = (0.5 + 1.0 + 0.25 + 2.0) / 4 / HAND_MUL_X_MEAN


def test_attention_and_add_magnitude_match_hand_values():
    report, record, output = _report('att', ['channel_add'])
    expected_map = np.full((10, 10), P_REST)
    expected_map[PEAK] = P_PEAK
    np.testing.assert_allclose(record.attention[0], expected_map, rtol=1e-5)
    assert report['entropy_ratio'] == pytest.approx(HAND_ENTROPY, rel=1e-5)
    assert report['top1pct_share'] == pytest.approx(HAND_TOP1, rel=1e-5)
    assert report['input_abs_mean'] == pytest.approx(HAND_X_MEAN, rel=1e-6)
    assert report['add_magnitude'] == pytest.approx(HAND_ADD, rel=1e-6)
    assert 'mul_magnitude' not in report
    # the hand-set weights do what the hand values assume: output = x + bias
    expected = _input().numpy() + np.array(ADD_BIAS, 'float32').reshape(1, 4, 1, 1)
    np.testing.assert_allclose(output, expected, rtol=1e-6)


def test_mul_then_add_uses_the_multiplied_features():
    report, _, _ = _report('att', ['channel_mul', 'channel_add'])
    assert report['mul_magnitude'] == pytest.approx(HAND_MUL, rel=1e-6)
    assert report['add_magnitude'] == pytest.approx(HAND_ADD_AFTER_MUL, rel=1e-5)
    assert report['add_magnitude'] != pytest.approx(HAND_ADD, rel=1e-3)


def test_avg_pooling_is_reported_uniform_by_construction():
    report, record, _ = _report('avg', ['channel_mul'])
    assert record.attention is None
    assert 'uniform by construction' in report['attention']
    assert report['entropy_ratio'] == 1.0
    assert report['top1pct_share'] == pytest.approx(1 / 100)
    assert report['mul_magnitude'] == pytest.approx(HAND_MUL, rel=1e-6)


def test_untrained_add_transform_reports_zero_contribution():
    block = GlobalContextBlock(4, ratio=0.5)          # last conv zero-initialised
    holder = paddle.nn.Sequential(block)
    with ContextCapture(holder) as capture, paddle.no_grad():
        holder(_input())
    assert block_report(capture.records[0])['add_magnitude'] == 0.0


def test_metric_edges():
    uniform = np.full((8, 8), 1 / 64)
    assert entropy_ratio(uniform) == pytest.approx(1.0)
    one_hot = np.zeros((8, 8))
    one_hot[2, 5] = 1.0
    assert entropy_ratio(one_hot) == 0.0
    assert top_share(one_hot) == 1.0
    assert top_share(uniform) == pytest.approx(1 / 64)     # 1 % of 64 rounds up to one position
    assert top_share(np.full((20, 10), 1 / 200)) == pytest.approx(2 / 200)  # 2 positions


def test_add_term_on_all_zero_features_is_null_in_the_report():
    block = _block('att', ['channel_add'])
    holder = paddle.nn.Sequential(block)
    with ContextCapture(holder) as capture, paddle.no_grad():
        holder(paddle.zeros([1, 4, 10, 10]))
    report = block_report(capture.records[0])
    assert report['add_magnitude'] is None
    assert report['entropy_ratio'] == pytest.approx(1.0)   # equal logits: uniform map
