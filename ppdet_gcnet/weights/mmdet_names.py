"""Name mapping: mmdetection (2.x) Mask / Cascade Mask R-CNN checkpoints -> our ppdet models.

Derived from mmdetection's module layout (facts, read from its source):
- backbone ResNet/ResNeXt: `conv1` + `bn1` stem, `layer{1..4}.{i}.conv{1,2,3}` / `bn{1,2,3}`,
  shortcut `downsample.0` (conv) / `downsample.1` (BN); style 'pytorch' puts the stride on conv2;
  BN buffers `running_mean` / `running_var` (+ `num_batches_tracked`, not a parameter here);
- GC plugin (mmcv ContextBlock, position after_conv3): `layer{s}.{i}.context_block.conv_mask`,
  `.channel_add_conv.{0,1,3}` / `.channel_mul_conv.{0,1,3}` (conv, LayerNorm([P, 1, 1]), ReLU, conv);
- DCN (mmcv DeformConv2dPack, v1): `conv2.weight` and `conv2.conv_offset` (18 channels = (dy, dx)
  for each of the 9 kernel taps);
- FPN: `neck.lateral_convs.{l}.conv`, `neck.fpn_convs.{l}.conv`, l = 0..3 for c2..c5;
- RPNHead: `rpn_head.rpn_conv`, `rpn_cls` (one sigmoid logit per anchor), `rpn_reg`;
- Shared2FCBBoxHead: `roi_head.bbox_head.shared_fcs.{0,1}`, `fc_cls` (num_classes + 1, background
  LAST), `fc_reg` (4 per class, no background; 4 in total in the class-agnostic cascade heads);
  cascade heads are `roi_head.bbox_head.{stage}.` ...;
- FCNMaskHead: `roi_head.mask_head.convs.{i}.conv`, `upsample` (ConvTranspose2d), `conv_logits`
  (one channel per class, no background); cascade: `roi_head.mask_head.{stage}.` ....
Layouts: torch Linear weights are [out, in], Paddle's [in, out] (transposed here); convs and
transposed convs share Paddle's layouts; LayerNorm weights are [P, 1, 1] in torch, [P] in Paddle.
ppdet's classifier also puts background last, so no class axis is reordered. Anchors: both
generate per location the ratios 0.5, 1, 2 (h/w) of one size, in that order, location-major; so
the RPN channels map one to one.
"""
import re

import numpy as np

from .legacy_names import ConversionRuleError, Rule, copy_as_is

# ppdet BN suffix -> torch BN suffix
_BN = {'weight': 'weight', 'bias': 'bias', '_mean': 'running_mean', '_variance': 'running_var'}
_BRANCH = {'branch2a': '1', 'branch2b': '2', 'branch2c': '3'}
# DCN v1 -> ppdet's modulated (v2) conv: the extra 9 modulation channels get zero weights and this
# bias, so sigmoid(bias) is exactly 1.0 in float32 (1 + exp(-30) rounds to 1) and v2 computes v1.
MODULATION_BIAS = 30.0


def transpose_linear(array, name):
    if array.ndim != 2:
        raise ConversionRuleError(f"{name}: a Linear weight must be 2-D, got {list(array.shape)}")
    return array.T


def flatten_layer_norm(array, name):
    return array.reshape(-1)


def dcn_offset_weight(array, name):
    """[2k, C, 3, 3] offsets -> [3k, C, 3, 3] offsets + zero modulation rows (k = 9 taps)."""
    if array.ndim != 4 or array.shape[0] % 2:
        raise ConversionRuleError(f"{name}: not a DCN offset conv weight {list(array.shape)}")
    taps = array.shape[0] // 2
    return np.concatenate([array, np.zeros((taps,) + array.shape[1:], array.dtype)])


def dcn_offset_bias(array, name):
    taps = array.shape[0] // 2
    return np.concatenate([array, np.full((taps,), MODULATION_BIAS, array.dtype)])


def _block_index(letter, digits):
    """ppdet block names: res4a, res4b, ... or res4a, res4b1, res4b2, ... (> 10 blocks)."""
    return int(digits) if digits else ord(letter) - ord('a')


def backbone_rule(name):
    """ppdet backbone parameter name -> Rule, or None when the name is not a ResNet one."""
    m = re.fullmatch(r'backbone\.conv1\.(?:res_)?conv1\.(conv|norm)\.(\w+)', name)
    if m:
        return Rule('backbone.conv1.weight' if m.group(1) == 'conv'
                    else f'backbone.bn1.{_BN[m.group(2)]}')
    m = re.fullmatch(r'backbone\.res(\d)\.res\d([a-z])(\d*)\.(.+)', name)
    if not m:
        return None
    stage, index = int(m.group(1)), _block_index(m.group(2), m.group(3))
    block = f'backbone.layer{stage - 1}.{index}'
    rest = m.group(4)
    m = re.fullmatch(r'(branch2[abc])\.(conv|norm)\.(\w+)', rest)
    if m:
        n = _BRANCH[m.group(1)]
        return Rule(f'{block}.conv{n}.weight' if m.group(2) == 'conv'
                    else f'{block}.bn{n}.{_BN[m.group(3)]}')
    m = re.fullmatch(r'branch2b\.conv_offset\.(weight|bias)', rest)
    if m:
        return Rule(f'{block}.conv2.conv_offset.{m.group(1)}',
                    dcn_offset_weight if m.group(1) == 'weight' else dcn_offset_bias)
    m = re.fullmatch(r'short\.(conv|norm)\.(\w+)', rest)
    if m:
        return Rule(f'{block}.downsample.0.weight' if m.group(1) == 'conv'
                    else f'{block}.downsample.1.{_BN[m.group(2)]}')
    m = re.fullmatch(r'gc_block\.(conv_mask\.\w+|channel_(?:add|mul)_conv\.(\d)\.\w+)', rest)
    if m:
        layer_norm = m.group(2) == '1'
        return Rule(f'{block}.context_block.{m.group(1)}',
                    flatten_layer_norm if layer_norm else copy_as_is)
    return None


def neck_rule(name):
    m = re.fullmatch(r'neck\.fpn_inner_res(\d)_sum(?:_lateral)?\.(weight|bias)', name)
    if m:
        return Rule(f'neck.lateral_convs.{int(m.group(1)) - 2}.conv.{m.group(2)}')
    m = re.fullmatch(r'neck\.fpn_res(\d)_sum\.(weight|bias)', name)
    if m:
        return Rule(f'neck.fpn_convs.{int(m.group(1)) - 2}.conv.{m.group(2)}')
    return None


_RPN = {'rpn_feat.rpn_conv': 'rpn_conv', 'rpn_rois_score': 'rpn_cls', 'rpn_rois_delta': 'rpn_reg'}


def head_rule(name, mask_stage=None):
    """RPN, box and mask heads. `mask_stage`: which of mmdetection's cascade mask heads feeds our
    last (or only) mask head (None for Mask R-CNN's only one)."""
    m = re.fullmatch(r'rpn_head\.(rpn_feat\.rpn_conv|rpn_rois_score|rpn_rois_delta)\.(\w+)', name)
    if m:
        return Rule(f'rpn_head.{_RPN[m.group(1)]}.{m.group(2)}')
    linear = lambda src, part: Rule(src, transpose_linear if part == 'weight' else copy_as_is)  # noqa: E731
    m = re.fullmatch(r'bbox_head\.head\.(fc6|fc7)\.(\w+)', name)         # Mask R-CNN
    if m:
        return linear(f'roi_head.bbox_head.shared_fcs.{int(m.group(1)[2]) - 6}.{m.group(2)}',
                      m.group(2))
    m = re.fullmatch(r'bbox_head\.(bbox_score|bbox_delta)\.(\w+)', name)
    if m:
        fc = 'fc_cls' if m.group(1) == 'bbox_score' else 'fc_reg'
        return linear(f'roi_head.bbox_head.{fc}.{m.group(2)}', m.group(2))
    m = re.fullmatch(r'bbox_head\.head\.(\d)\.(fc6|fc7)\.(\w+)', name)   # cascade stages
    if m:
        return linear(f'roi_head.bbox_head.{m.group(1)}.shared_fcs.{int(m.group(2)[2]) - 6}.'
                      f'{m.group(3)}', m.group(3))
    m = re.fullmatch(r'bbox_head\.(bbox_score|bbox_delta)_stage(\d)\.(\w+)', name)
    if m:
        fc = 'fc_cls' if m.group(1) == 'bbox_score' else 'fc_reg'
        return linear(f'roi_head.bbox_head.{m.group(2)}.{fc}.{m.group(3)}', m.group(3))
    # the last (or only) mask head: `head` + `mask_fcn_logits`; the earlier cascade stages'
    # (MMDetCascadeMaskHead): `stage_heads.{s}` + `stage_logits.{s}`
    m = re.fullmatch(r'mask_head\.(?:head|stage_heads\.(\d+))\.upsample\.'
                     r'(?:mask_inter_feat_(\d+)|conv5_mask)\.(\w+)', name)
    if m:
        stage, conv, part = m.groups()
        mask = _mask_prefix(mask_stage if stage is None else int(stage))
        if conv is None:
            return Rule(f'{mask}upsample.{part}')
        return Rule(f'{mask}convs.{int(conv) - 1}.conv.{part}')
    m = re.fullmatch(r'mask_head\.(?:mask_fcn_logits|stage_logits\.(\d+))\.(\w+)', name)
    if m:
        stage, part = m.groups()
        return Rule(f'{_mask_prefix(mask_stage if stage is None else int(stage))}conv_logits.{part}')
    return None


def _mask_prefix(stage):
    return 'roi_head.mask_head.' + ('' if stage is None else f'{stage}.')


def mmdet_rules(target_names, cascade_stages=None):
    """ppdet parameter name -> Rule(mmdetection name, transform) for every name a rule covers.
    `cascade_stages`: number of cascade stages (its last mask head is the one ppdet has)."""
    mask_stage = None if not cascade_stages else cascade_stages - 1
    rules = {}
    for name in target_names:
        rule = backbone_rule(name) or neck_rule(name) or head_rule(name, mask_stage)
        if rule is not None:
            rules[name] = rule
    return rules


def is_ignorable(mmdet_name):
    """mmdetection tensors that carry no model parameter here: BN's step counter."""
    return mmdet_name.endswith('.num_batches_tracked')
