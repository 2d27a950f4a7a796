"""Name mapping: legacy static-graph Mask R-CNN ResNet-vd-FPN (+GC) -> our dygraph model.

Every rule below is derived from the legacy static code (PaddleDetection `static/ppdet`):
- backbones/resnet.py + name_adapter.py: conv `<conv>_weights` (no bias); its batch norm
  `bn<conv[3:]>_{scale,offset,mean,variance}` (`conv1` -> `bn_conv1`; vd stem `conv1_1` ->
  `bnv1_1`); blocks `res<stage><a,b,c..>` (`res4a`, `res4b1`.. when a stage has > 10 blocks);
  branches `_branch2a/b/c`, shortcut `_branch1`;
- backbones/gc_block.py: block `gcb_res<stage>_b<index>` (index from 0), attention conv
  `<gcb>_spatial_pool_{weights,bias}`, transforms `<gcb>_{add,mul}_{conv1,ln,conv2}_{weights,bias}`;
- necks FPN: `fpn_inner_res5_sum_{w,b}` (top 1x1), `fpn_inner_res<l>_sum_lateral_{w,b}`,
  `fpn_res<l>_sum_{w,b}` (3x3 outputs);
- anchor_heads/rpn_head.py FPNRPNHead: every level shares the min level's
  `conv_rpn_fpn2_{w,b}`, `rpn_cls_logits_fpn2_{w,b}`, `rpn_bbox_pred_fpn2_{w,b}`;
- roi_heads/bbox_head.py TwoFCHead/BBoxHead: `fc6_{w,b}`, `fc7_{w,b}`, `cls_score_{w,b}`,
  `bbox_pred_{w,b}`, with 81 classes, background first;
- roi_heads/mask_head.py: `mask_inter_feat_<1..4>_{w,b}`, `conv5_mask_{w,b}` (transposed conv),
  `mask_fcn_logits_{w,b}` with 81 classes, background first.
Layouts: Paddle's fc weight is [in, out] in both graphs, conv [out, in, kh, kw], transposed conv
[in, out, kh, kw], LayerNorm scale [C*r]; so no parameter needs a transpose. What differs is the
class axis: dygraph ppdet puts background last in the classifier and has no background slot in
box deltas and mask logits (transforms below).
"""
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Tuple

import numpy as np

_BN_SUFFIXES = (('weight', 'scale'), ('bias', 'offset'), ('_mean', 'mean'),
                ('_variance', 'variance'))
_STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                 152: (3, 8, 36, 3), 200: (3, 12, 48, 3)}
# Legacy names of optimizer/training state that never map to a model parameter.
OPTIMIZER_STATE_MARKERS = ('_velocity_', '_moment', 'learning_rate', '@LR_DECAY_COUNTER@',
                           '_beta1_pow_acc', '_beta2_pow_acc')


class ConversionRuleError(ValueError):
    """A legacy array whose shape does not fit the rule that maps it."""


def copy_as_is(array, legacy_name):
    return array


def background_first_to_last(array, legacy_name):
    """cls_score (fc [in, 1 + C]): legacy class 0 is background, dygraph's background is C."""
    return np.concatenate([array[..., 1:], array[..., :1]], axis=-1)


def drop_background_deltas(array, legacy_name):
    """bbox_pred (fc [in, 4 * (1 + C)], class-major): drop the background's 4 deltas."""
    if array.shape[-1] % 4:
        raise ConversionRuleError(f"{legacy_name}: last axis {array.shape[-1]} is not 4 * classes")
    return array[..., 4:]


def drop_background_channel(array, legacy_name):
    """mask_fcn_logits (conv [1 + C, in, 1, 1] / bias [1 + C]): drop background channel 0."""
    return array[1:]


class Rule(NamedTuple):
    legacy_name: str
    transform: Callable = copy_as_is


@dataclass(frozen=True)
class LegacyArch:
    """What the name set depends on. Stage numbers are the legacy ones (2..5 = res2..res5)."""
    depth: int = 50
    variant: str = 'd'
    gc_stages: Tuple[int, ...] = (3, 4, 5)
    gc_pooling: str = 'att'
    gc_fusion_types: Tuple[str, ...] = ('channel_add',)
    fpn_levels: Tuple[int, ...] = (2, 3, 4, 5)
    rpn_min_level: int = 2
    mask_num_convs: int = 4


def block_name(stage, count, index):
    """name_adapter.fix_layer_warp_name for plain ResNets (the dygraph adapter is identical)."""
    if count > 10 and stage == 4:
        return f'res{stage}a' if index == 0 else f'res{stage}b{index}'
    return f'res{stage}' + chr(ord('a') + index)


def legacy_bn_name(conv_name):
    """name_adapter.fix_conv_norm_name for ResNet."""
    return 'bn_' + conv_name if conv_name == 'conv1' else 'bn' + conv_name[3:]


def _conv_norm(rules, dy_prefix, conv_name, dy_conv='conv', dy_norm='norm'):
    rules[f'{dy_prefix}.{dy_conv}.weight'] = Rule(conv_name + '_weights')
    bn = legacy_bn_name(conv_name)
    for dy_suffix, legacy_suffix in _BN_SUFFIXES:
        rules[f'{dy_prefix}.{dy_norm}.{dy_suffix}'] = Rule(f'{bn}_{legacy_suffix}')


def _gc_block(rules, dy_prefix, gcb, arch):
    if arch.gc_pooling == 'att':
        rules[f'{dy_prefix}.conv_mask.weight'] = Rule(gcb + '_spatial_pool_weights')
        rules[f'{dy_prefix}.conv_mask.bias'] = Rule(gcb + '_spatial_pool_bias')
    for fusion, tag in (('channel_mul', 'mul'), ('channel_add', 'add')):
        if fusion not in arch.gc_fusion_types:
            continue
        seq = f'{dy_prefix}.{fusion}_conv'
        for index, part in ((0, 'conv1'), (1, 'ln'), (3, 'conv2')):
            rules[f'{seq}.{index}.weight'] = Rule(f'{gcb}_{tag}_{part}_weights')
            rules[f'{seq}.{index}.bias'] = Rule(f'{gcb}_{tag}_{part}_bias')


def backbone_rules(arch, prefix='backbone'):
    if arch.depth not in _STAGE_BLOCKS or arch.depth < 50:
        raise ValueError(f"depth {arch.depth}: only bottleneck ResNets (50, 101, 152, 200) "
                         f"carry GC blocks in the legacy code")
    rules = {}
    stem = (['conv1_1', 'conv1_2', 'conv1_3'] if arch.variant in ('c', 'd') else ['conv1'])
    for conv_name in stem:
        _conv_norm(rules, f'{prefix}.conv1.{conv_name}', conv_name)
    for stage, count in zip((2, 3, 4, 5), _STAGE_BLOCKS[arch.depth]):
        for index in range(count):
            block = block_name(stage, count, index)
            dy_block = f'{prefix}.res{stage}.{block}'
            for branch in ('branch2a', 'branch2b', 'branch2c'):
                _conv_norm(rules, f'{dy_block}.{branch}', f'{block}_{branch}')
            if index == 0:   # bottleneck stages always project in their first block
                pooled = arch.variant == 'd' and stage != 2   # vd: avg-pool + conv, stride 2
                short = f'{dy_block}.short.conv' if pooled else f'{dy_block}.short'
                _conv_norm(rules, short, f'{block}_branch1')
            if stage in arch.gc_stages:
                _gc_block(rules, f'{dy_block}.gc_block', f'gcb_res{stage}_b{index}', arch)
    return rules


def fpn_rules(arch, prefix='neck'):
    rules = {}
    top = max(arch.fpn_levels)
    for level in arch.fpn_levels:
        inner = f'fpn_inner_res{level}_sum' + ('' if level == top else '_lateral')
        for dy, legacy in (('weight', 'w'), ('bias', 'b')):
            rules[f'{prefix}.{inner}.{dy}'] = Rule(f'{inner}_{legacy}')
            rules[f'{prefix}.fpn_res{level}_sum.{dy}'] = Rule(f'fpn_res{level}_sum_{legacy}')
    return rules


def head_rules(arch):
    rules = {}
    lvl = arch.rpn_min_level
    wb = (('weight', 'w'), ('bias', 'b'))
    for dy, legacy in wb:
        rules[f'rpn_head.rpn_feat.rpn_conv.{dy}'] = Rule(f'conv_rpn_fpn{lvl}_{legacy}')
        rules[f'rpn_head.rpn_rois_score.{dy}'] = Rule(f'rpn_cls_logits_fpn{lvl}_{legacy}')
        rules[f'rpn_head.rpn_rois_delta.{dy}'] = Rule(f'rpn_bbox_pred_fpn{lvl}_{legacy}')
        rules[f'bbox_head.head.fc6.{dy}'] = Rule(f'fc6_{legacy}')
        rules[f'bbox_head.head.fc7.{dy}'] = Rule(f'fc7_{legacy}')
        rules[f'bbox_head.bbox_score.{dy}'] = Rule(f'cls_score_{legacy}', background_first_to_last)
        rules[f'bbox_head.bbox_delta.{dy}'] = Rule(f'bbox_pred_{legacy}', drop_background_deltas)
        for i in range(1, arch.mask_num_convs + 1):
            rules[f'mask_head.head.upsample.mask_inter_feat_{i}.{dy}'] = \
                Rule(f'mask_inter_feat_{i}_{legacy}')
        rules[f'mask_head.head.upsample.conv5_mask.{dy}'] = Rule(f'conv5_mask_{legacy}')
        rules[f'mask_head.mask_fcn_logits.{dy}'] = \
            Rule(f'mask_fcn_logits_{legacy}', drop_background_channel)
    return rules


def mask_rcnn_rules(arch=LegacyArch()) -> Dict[str, Rule]:
    """dygraph parameter name -> Rule(legacy name, transform) for the whole Mask R-CNN."""
    rules = {}
    rules.update(backbone_rules(arch))
    rules.update(fpn_rules(arch))
    rules.update(head_rules(arch))
    return rules


def is_optimizer_state(legacy_name):
    return any(marker in legacy_name for marker in OPTIMIZER_STATE_MARKERS)
