"""Global context block (GCNet, arXiv 1904.11492) as a Paddle dygraph layer.

Sublayer names (`conv_mask`, `channel_add_conv`, `channel_mul_conv`, each transform an indexed
Sequential conv -> LayerNorm -> ReLU -> conv) follow the layout shared by the legacy Paddle
static block and mmcv's ContextBlock, so their checkpoints map one parameter to one parameter.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingNormal

POOLING_TYPES = ('att', 'avg')
FUSION_TYPES = ('channel_add', 'channel_mul')


class GCConfigError(ValueError):
    """A GC setting that cannot build a block; the message names the key and the value."""


def context_channels(in_channels, ratio, key_prefix=''):
    """Bottleneck width of the transform, `int(in_channels * ratio)` as in the legacy code."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise GCConfigError(
            f"{key_prefix}ratio: {ratio!r} is not allowed; use a number > 0 (e.g. 0.0625 = 1/16)")
    planes = int(in_channels * ratio)
    if planes < 1:
        raise GCConfigError(
            f"{key_prefix}ratio: {ratio!r} gives {in_channels} * {ratio} < 1 channel; "
            f"use a ratio >= {1.0 / in_channels:g} for {in_channels} input channels")
    return planes


def check_pooling_type(pooling_type, key_prefix=''):
    if pooling_type not in POOLING_TYPES:
        raise GCConfigError(f"{key_prefix}pooling_type: {pooling_type!r} is not supported; "
                            f"allowed: {', '.join(POOLING_TYPES)}")
    return pooling_type


def check_fusion_types(fusion_types, key_prefix=''):
    if isinstance(fusion_types, str):
        fusion_types = [fusion_types]
    if not isinstance(fusion_types, (list, tuple)) or len(fusion_types) == 0:
        raise GCConfigError(f"{key_prefix}fusion_types: {fusion_types!r} is not allowed; "
                            f"give a non-empty list of {', '.join(FUSION_TYPES)}")
    for fusion in fusion_types:
        if fusion not in FUSION_TYPES:
            raise GCConfigError(f"{key_prefix}fusion_types: {fusion!r} is not supported; "
                                f"allowed: {', '.join(FUSION_TYPES)}")
    return tuple(fusion_types)


def _channel_transform(channels, planes):
    """conv1x1(C -> P) -> LayerNorm over [P, 1, 1] -> ReLU -> conv1x1(P -> C), last conv zero."""
    zero = ParamAttr(initializer=Constant(0.0))
    return nn.Sequential(
        nn.Conv2D(channels, planes, 1),
        nn.LayerNorm([planes, 1, 1]),
        nn.ReLU(),
        nn.Conv2D(planes, channels, 1, weight_attr=zero, bias_attr=zero))


class GlobalContextBlock(nn.Layer):
    """Context modelling (attention or average pooling), transform, and fusion into `x`.

    Args:
        in_channels (int): channels C of the input feature map.
        ratio (float): bottleneck ratio of the transform; width is int(C * ratio).
        pooling_type (str): 'att' (softmax attention over H*W) or 'avg' (global mean).
        fusion_types (sequence): 'channel_add', 'channel_mul' or both; with both, the
            multiplication is applied first, then the addition.
    """

    def __init__(self, in_channels, ratio=1.0 / 16, pooling_type='att',
                 fusion_types=('channel_add', )):
        super().__init__()
        self.in_channels = in_channels
        self.ratio = ratio
        self.pooling_type = check_pooling_type(pooling_type)
        self.fusion_types = check_fusion_types(fusion_types)
        self.planes = context_channels(in_channels, ratio)

        if self.pooling_type == 'att':
            self.conv_mask = nn.Conv2D(
                in_channels, 1, 1,
                weight_attr=ParamAttr(initializer=KaimingNormal()),
                bias_attr=ParamAttr(initializer=Constant(0.0)))
        self.channel_mul_conv = (_channel_transform(in_channels, self.planes)
                                 if 'channel_mul' in self.fusion_types else None)
        self.channel_add_conv = (_channel_transform(in_channels, self.planes)
                                 if 'channel_add' in self.fusion_types else None)

    def spatial_pool(self, x):
        """[N, C, H, W] -> context [N, C, 1, 1]."""
        if self.pooling_type == 'avg':
            return x.mean(axis=[2, 3], keepdim=True)
        # One attention map over all H*W positions, shared by every query position.
        attention = F.softmax(paddle.flatten(self.conv_mask(x), start_axis=2), axis=2)
        context = paddle.matmul(paddle.flatten(x, start_axis=2), attention, transpose_y=True)
        return context.unsqueeze(-1)

    def forward(self, x):
        context = self.spatial_pool(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * F.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, ratio={self.ratio}, "
                f"pooling_type={self.pooling_type}, fusion_types={list(self.fusion_types)}")
