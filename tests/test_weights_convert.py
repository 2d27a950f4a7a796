"""Legacy -> dygraph conversion: the full name map against the real model, values through
both legacy layouts (folder and archive), and the GC backbone with converted weights against
a NumPy implementation of the legacy static network."""
import os

import numpy as np
import paddle
import pytest

from ppdet_gcnet.weights.convert import (ConversionError, convert_arrays, load_legacy_weights,
                                         model_targets, require_complete, save_pdparams)
from ppdet_gcnet.weights.legacy_names import (LegacyArch, background_first_to_last,
                                              drop_background_channel, drop_background_deltas,
                                              mask_rcnn_rules)
from test_weights_legacy_files import tar_folder, write_fluid_pickle, write_lod_tensor_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml')


@pytest.fixture(scope='module')
def model_and_targets():
    import ppdet_gcnet  # noqa: F401
    from ppdet.core.workspace import create, load_config
    cfg = load_config(CONFIG)
    model = create(cfg['architecture'])
    model.eval()
    targets = {k: (tuple(v.shape), np.dtype('float32')) for k, v in model.state_dict().items()}
    return model, targets


def legacy_shape(rule, shape):
    """Shape the legacy graph stores for a target shape (inverse of the class-axis rules)."""
    if rule.transform is drop_background_deltas:
        return shape[:-1] + (shape[-1] + 4,)
    if rule.transform is drop_background_channel:
        return (shape[0] + 1,) + shape[1:]
    return shape


def make_legacy(targets, rules, rng, names=None):
    """Legacy arrays (legacy names) for `names` (default: all targets); BN variances > 0."""
    arrays = {}
    for name in (names if names is not None else targets):
        rule = rules[name]
        shape = legacy_shape(rule, targets[name][0])
        if name.endswith('_variance'):
            arrays[rule.legacy_name] = rng.uniform(0.5, 1.5, shape).astype('float32')
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else 1
            scale = np.sqrt(2.0 / fan_in) if len(shape) == 4 else 0.5
            arrays[rule.legacy_name] = (rng.standard_normal(shape) * scale).astype('float32')
    return arrays


def expected_value(rule, legacy_array):
    """Independent statement of the class-axis rules (background first -> last / dropped)."""
    if rule.transform is background_first_to_last:
        return np.roll(legacy_array, -1, axis=-1)
    if rule.transform is drop_background_deltas:
        return legacy_array[..., 4:]
    if rule.transform is drop_background_channel:
        return legacy_array[1:]
    return legacy_array


def test_every_model_parameter_has_a_rule_with_matching_shape(model_and_targets):
    _, targets = model_and_targets
    rules = mask_rcnn_rules(LegacyArch())
    assert set(rules) == set(targets)
    assert len(targets) == 421
    legacy_names = [r.legacy_name for r in rules.values()]
    assert len(set(legacy_names)) == len(legacy_names)       # one legacy array per parameter
    # shapes: zero-cost arrays of the legacy shapes convert into exactly the model's shapes
    legacy = {rules[n].legacy_name: np.broadcast_to(np.float32(0), legacy_shape(rules[n], s))
              for n, (s, _) in targets.items()}
    legacy['res2a_branch2a_weights_velocity_0'] = np.zeros(1, 'float32')
    legacy['some_unknown_var'] = np.zeros(1, 'float32')
    state, report = convert_arrays(legacy, targets, rules)
    assert report.ok and len(report.filled) == 421 and set(state) == set(targets)
    assert report.unmapped_legacy == ['some_unknown_var']
    assert report.optimizer_state == ['res2a_branch2a_weights_velocity_0']


def test_mul_row_config_is_fully_mapped():
    """The GC mul row, through the child-process model description."""
    config = os.path.join(ROOT, 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco.yml')
    targets, arch = model_targets(config)
    rules = mask_rcnn_rules(arch)
    assert arch.gc_fusion_types == ('channel_mul',) and arch.gc_stages == (3, 4, 5)
    assert len(targets) == 421 and set(rules) == set(targets)
    assert rules['backbone.res5.res5c.gc_block.channel_mul_conv.1.bias'].legacy_name == \
        'gcb_res5_b2_mul_ln_bias'


def test_names_follow_the_legacy_code():
    rules = mask_rcnn_rules(LegacyArch(gc_fusion_types=('channel_add', 'channel_mul')))
    expect = {
        'backbone.conv1.conv1_1.norm._variance': 'bnv1_1_variance',
        'backbone.res2.res2a.short.conv.weight': 'res2a_branch1_weights',
        'backbone.res4.res4f.branch2c.norm.bias': 'bn4f_branch2c_offset',
        'backbone.res5.res5a.short.conv.norm.weight': 'bn5a_branch1_scale',
        'backbone.res3.res3a.gc_block.conv_mask.weight': 'gcb_res3_b0_spatial_pool_weights',
        'backbone.res5.res5c.gc_block.channel_add_conv.1.weight': 'gcb_res5_b2_add_ln_weights',
        'backbone.res4.res4b.gc_block.channel_mul_conv.3.bias': 'gcb_res4_b1_mul_conv2_bias',
        'neck.fpn_inner_res5_sum.weight': 'fpn_inner_res5_sum_w',
        'neck.fpn_inner_res2_sum_lateral.bias': 'fpn_inner_res2_sum_lateral_b',
        'neck.fpn_res3_sum.weight': 'fpn_res3_sum_w',
        'rpn_head.rpn_rois_delta.weight': 'rpn_bbox_pred_fpn2_w',
        'bbox_head.head.fc6.weight': 'fc6_w',
        'mask_head.head.upsample.conv5_mask.bias': 'conv5_mask_b',
    }
    for dygraph, legacy in expect.items():
        assert rules[dygraph].legacy_name == legacy
    assert not any('res2' in k and 'gc_block' in k for k in rules)


def test_missing_and_misshapen_arrays_are_errors(model_and_targets):
    _, targets = model_and_targets
    rules = mask_rcnn_rules()
    names = ['backbone.res3.res3a.gc_block.channel_add_conv.1.weight',
             'mask_head.mask_fcn_logits.bias', 'bbox_head.bbox_score.bias']
    sub = {n: targets[n] for n in names}
    legacy = make_legacy(sub, rules, np.random.default_rng(0))
    legacy['gcb_res3_b0_add_ln_weights'] = np.zeros(31, 'float32')   # wrong width
    del legacy['cls_score_b']
    state, report = convert_arrays(legacy, sub, rules)
    assert not report.ok
    assert report.missing_legacy == [('bbox_head.bbox_score.bias', 'cls_score_b')]
    assert 'gcb_res3_b0_add_ln_weights [31]' in report.shape_errors[0]
    with pytest.raises(ConversionError, match='conversion incomplete'):
        require_complete(report, 'x.tar')
    _, report = convert_arrays(legacy, {'unknown.param': ((1,), np.dtype('float32'))}, rules)
    assert report.unfilled == ['unknown.param']


SUBSET_PREFIXES = ('backbone.conv1.', 'backbone.res2.', 'backbone.res3.', 'rpn_head.',
                   'bbox_head.bbox_', 'mask_head.mask_fcn_logits', 'mask_head.head.upsample.conv5')


@pytest.mark.parametrize('layout', ['lodtensor-folder', 'lodtensor-tar', 'pickle-file',
                                    'pickle-tar'])
def test_both_legacy_layouts_convert_value_by_value(model_and_targets, tmp_path, layout):
    model, targets = model_and_targets
    rules = mask_rcnn_rules()
    names = [n for n in targets if n.startswith(SUBSET_PREFIXES)]
    sub = {n: targets[n] for n in names}
    legacy = make_legacy(sub, rules, np.random.default_rng(1))
    extra = dict(legacy, fc6_w_velocity_0=np.zeros(3, 'float32'), stray_var=np.ones(2, 'float32'))
    folder = tmp_path / 'mask_rcnn_r50_vd_fpn_gcb_add_r16_2x'
    if layout.startswith('lodtensor'):
        write_lod_tensor_folder(folder, extra)
        (folder / '__model__').write_bytes(b'\x0a\x05program desc, not a tensor')
    else:
        folder.mkdir()
        write_fluid_pickle(folder / 'model.pdparams', extra)
    source = folder
    if layout.endswith('tar'):
        source = tar_folder(folder, tmp_path / 'legacy.tar', folder.name)
    elif layout == 'pickle-file':
        source = folder / 'model.pdparams'
    arrays, skipped = load_legacy_weights(source)
    state, report = convert_arrays(arrays, sub, rules)
    assert report.ok and len(report.filled) == len(names)
    assert report.unmapped_legacy == ['stray_var']
    assert report.optimizer_state == ['fc6_w_velocity_0']
    if layout.startswith('lodtensor'):
        assert [os.path.basename(f) for f in skipped] == ['__model__']
    out = save_pdparams(state, tmp_path / 'out' / 'converted.pdparams')
    loaded = paddle.load(out)
    for name in names:
        want = expected_value(rules[name], legacy[rules[name].legacy_name])
        np.testing.assert_array_equal(np.asarray(loaded[name]), want, err_msg=name)
    assert not [f for f in os.listdir(tmp_path / 'out') if f != 'converted.pdparams']


def test_class_axis_rules_keep_each_class_with_its_weights():
    w = np.arange(2 * 81, dtype='float32').reshape(2, 81)   # column k = legacy class k
    got = background_first_to_last(w, 'cls_score_w')
    np.testing.assert_array_equal(got[:, 80], w[:, 0])        # background moved last
    np.testing.assert_array_equal(got[:, :80], w[:, 1:])      # class k+1 -> k
    d = np.arange(3 * 324, dtype='float32').reshape(3, 324)
    np.testing.assert_array_equal(drop_background_deltas(d, 'bbox_pred_w')[:, :4], d[:, 4:8])
    m = np.arange(81, dtype='float32')
    assert drop_background_channel(m, 'mask_fcn_logits_b')[0] == 1


# ------------------------------------------------ NumPy reference of the legacy backbone

def np_conv(x, w, stride=1, bias=None):
    k = w.shape[-1]
    pad = (k - 1) // 2
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    out = np.einsum('chwij,ocij->ohw', win, w, optimize=True)
    return out if bias is None else out + bias[:, None, None]


def np_bn(x, p, name):
    scale, offset = p[name + '_scale'], p[name + '_offset']
    mean, var = p[name + '_mean'], p[name + '_variance']
    return ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
            * scale[:, None, None] + offset[:, None, None])


def np_conv_bn(x, p, conv, stride=1, relu=True):
    bn = 'bn_conv1' if conv == 'conv1' else 'bn' + conv[3:]
    y = np_bn(np_conv(x, p[conv + '_weights'], stride), p, bn)
    return np.maximum(y, 0) if relu else y


def np_gc_add(x, p, g):
    c, h, w = x.shape
    logits = np_conv(x, p[g + '_spatial_pool_weights'], 1, p[g + '_spatial_pool_bias'])
    a = np.exp(logits.reshape(-1) - logits.max())
    a /= a.sum()
    context = x.reshape(c, -1) @ a                                         # [C]
    t = p[g + '_add_conv1_weights'][:, :, 0, 0] @ context + p[g + '_add_conv1_bias']
    t = (t - t.mean()) / np.sqrt(t.var() + 1e-5) * p[g + '_add_ln_weights'] + p[g + '_add_ln_bias']
    t = np.maximum(t, 0)
    t = p[g + '_add_conv2_weights'][:, :, 0, 0] @ t + p[g + '_add_conv2_bias']
    return x + t[:, None, None]


def np_legacy_resnet50_vd_gc(img, p, gc_stages=(3, 4, 5)):
    x = np_conv_bn(img, p, 'conv1_1', 2)
    x = np_conv_bn(x, p, 'conv1_2')
    x = np_conv_bn(x, p, 'conv1_3')
    x = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)      # max pool 3x3 s2 p1
    x = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max((-1, -2))
    outs = []
    for stage, count in zip((2, 3, 4, 5), (3, 4, 6, 3)):
        for i in range(count):
            name = f'res{stage}' + chr(ord('a') + i)
            stride = 2 if i == 0 and stage != 2 else 1
            r = np_conv_bn(x, p, name + '_branch2a')
            r = np_conv_bn(r, p, name + '_branch2b', stride)                  # vd: stride on 3x3
            r = np_conv_bn(r, p, name + '_branch2c', relu=False)
            if stage in gc_stages:
                r = np_gc_add(r, p, f'gcb_res{stage}_b{i}')
            if i == 0:
                s = x
                if stage != 2:   # vd shortcut: 2x2 average pool (ceil mode), then 1x1 conv
                    c, h, w = s.shape
                    s = s.reshape(c, h // 2, 2, w // 2, 2).mean((2, 4))
                s = np_conv_bn(s, p, name + '_branch1', relu=False)
            else:
                s = x
            x = np.maximum(s + r, 0)
        outs.append(x)
    return outs


def test_gc_backbone_with_converted_weights_matches_numpy_legacy_network(model_and_targets):
    model, targets = model_and_targets
    rules = mask_rcnn_rules()
    names = [n for n in targets if n.startswith('backbone.')]
    sub = {n: targets[n] for n in names}
    legacy = make_legacy(sub, rules, np.random.default_rng(2))
    for name, array in legacy.items():   # GC convs non-zero, LN scales away from 1
        if name.startswith('gcb_') and name.endswith('_ln_weights'):
            legacy[name] = np.random.default_rng(3).uniform(0.5, 1.5, array.shape).astype('float32')
    state, report = convert_arrays(legacy, sub, rules)
    assert report.ok
    backbone = model.backbone
    backbone.set_state_dict({k[len('backbone.'):]: v for k, v in state.items()})
    for name in names:   # every backbone parameter and BN statistic really took the value
        np.testing.assert_array_equal(backbone.state_dict()[name[len('backbone.'):]].numpy(),
                                      state[name], err_msg=name)
    img = np.random.default_rng(4).standard_normal((3, 64, 64)).astype('float32')
    with paddle.no_grad():
        feats = backbone({'image': paddle.to_tensor(img[None])})
    want = np_legacy_resnet50_vd_gc(img.astype('float64'),
                                    {k: v.astype('float64') for k, v in legacy.items()})
    for level, (got, ref) in enumerate(zip(feats, want)):
        got = got.numpy()[0]
        assert got.shape == ref.shape, level
        err = np.abs(got - ref).max() / (np.abs(ref).max() + 1e-12)
        assert err < 1e-4, f"res{level + 2}: relative error {err:.2e}"
    # and the comparison is sensitive: a GC weight changed -> c3..c5 move
    legacy['gcb_res3_b0_add_conv2_bias'] = legacy['gcb_res3_b0_add_conv2_bias'] + 1.0
    moved = np_legacy_resnet50_vd_gc(img.astype('float64'),
                                     {k: v.astype('float64') for k, v in legacy.items()})
    assert np.abs(moved[1] - want[1]).max() > 1e-3
