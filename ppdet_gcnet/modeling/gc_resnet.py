"""ResNet with global context blocks, registered in ppdet's workspace as `GCResNet`.

It builds ppdet's own `ResNet` unchanged and attaches one `GlobalContextBlock` to every residual
block of the chosen stages, as sublayer `gc_block` of that residual block. The block acts on the
residual branch right after its last conv + norm (`branch2c` of a bottleneck, `branch2b` of a basic
block), before the shortcut add: where the legacy static implementation applied it. Every other
parameter keeps ppdet's ResNet name, so ImageNet ResNet weights load unchanged.

Stage indices follow ppdet's dygraph convention (`return_idx`, `dcn_v2_stages`): 0..3 are
res2..res5, i.e. c2..c5. The paper's and the legacy zoo's "c3-c5" is `gc_stages: [1, 2, 3]`.
"""
from ppdet.core.workspace import register, serializable
from ppdet.modeling.backbones.resnet import BottleNeck, ResNet, ResNet_cfg

from .gc_block import (GCConfigError, GlobalContextBlock, check_fusion_types,
                       check_pooling_type, context_channels)

# Residual blocks of the torchvision-style depths; GC needs one of these.
SUPPORTED_DEPTHS = tuple(sorted(ResNet_cfg))
SUPPORTED_VARIANTS = ('a', 'b', 'c', 'd')
STAGE_WIDTHS = (64, 128, 256, 512)  # ppdet ResNet's ch_out per stage, before block expansion


def _apply_context(layer, inputs, output):
    """Forward post-hook of the residual branch's last conv + norm: fuse global context."""
    return layer._gc_owner_block(output)


def _last_conv_norm(residual_block):
    """Last conv + norm of the residual branch: branch2c (bottleneck) or branch2b (basic)."""
    if isinstance(residual_block, BottleNeck):
        return residual_block.branch2c
    return residual_block.branch2b


@register
@serializable
class GCResNet(ResNet):
    """ResNet (ppdet's, unchanged) with GC blocks on the residual branches of `gc_stages`.

    Args:
        gc_stages (list[int]): stage indices (0..num_stages-1 = res2..res5) that get GC blocks.
        gc_ratio (float): transform bottleneck ratio (1/16 in the paper's r16 models).
        gc_pooling_type (str): 'att' or 'avg'.
        gc_fusion_types (list[str]): 'channel_add', 'channel_mul' or both.
        other arguments: those of ppdet's `ResNet`.
    """
    __shared__ = ['norm_type']

    def __init__(self,
                 depth=50,
                 ch_in=64,
                 variant='b',
                 lr_mult_list=[1.0, 1.0, 1.0, 1.0],
                 groups=1,
                 base_width=64,
                 norm_type='bn',
                 norm_decay=0,
                 freeze_norm=True,
                 freeze_at=0,
                 return_idx=[0, 1, 2, 3],
                 dcn_v2_stages=[-1],
                 num_stages=4,
                 std_senet=False,
                 gc_stages=[1, 2, 3],
                 gc_ratio=1.0 / 16,
                 gc_pooling_type='att',
                 gc_fusion_types=['channel_add']):
        gc_stages, gc_fusion_types = self.check_args(
            depth=depth, variant=variant, num_stages=num_stages, gc_stages=gc_stages,
            gc_ratio=gc_ratio, gc_pooling_type=gc_pooling_type, gc_fusion_types=gc_fusion_types)
        super().__init__(
            depth=depth, ch_in=ch_in, variant=variant, lr_mult_list=lr_mult_list,
            groups=groups, base_width=base_width, norm_type=norm_type,
            norm_decay=norm_decay, freeze_norm=freeze_norm, freeze_at=freeze_at,
            return_idx=return_idx, dcn_v2_stages=dcn_v2_stages, num_stages=num_stages,
            std_senet=std_senet)
        self.gc_stages = gc_stages
        self.gc_blocks = []
        for stage in gc_stages:
            channels = self._out_channels[stage]
            for residual_block in self.res_layers[stage].blocks:
                block = GlobalContextBlock(channels, gc_ratio, gc_pooling_type, gc_fusion_types)
                residual_block.add_sublayer('gc_block', block)
                target = _last_conv_norm(residual_block)
                # Plain attribute, not a sublayer: the block is owned (and named) by the
                # residual block, the hook only needs to reach it.
                object.__setattr__(target, '_gc_owner_block', block)
                target.register_forward_post_hook(_apply_context)
                self.gc_blocks.append(block)
        # ResNet froze stages 0..freeze_at before the GC blocks existed; a frozen stage stays
        # wholly frozen, its GC blocks included.
        if freeze_at >= 0:
            for i in range(min(freeze_at + 1, num_stages)):
                if i in gc_stages:
                    self._freeze_parameters(self.res_layers[i])

    @classmethod
    def check_args(cls, depth=50, variant='b', num_stages=4, gc_stages=(1, 2, 3),
                   gc_ratio=1.0 / 16, gc_pooling_type='att', gc_fusion_types=('channel_add', ),
                   **_other_resnet_args):
        """Validate the GC-relevant arguments without building anything (tools call this at
        config time, before data loading). Returns (sorted gc_stages, fusion types tuple)."""
        cls._check_resnet_args(depth, variant, num_stages)
        gc_stages = cls._check_stages(gc_stages, num_stages)
        check_pooling_type(gc_pooling_type, 'GCResNet.gc_')
        gc_fusion_types = check_fusion_types(gc_fusion_types, 'GCResNet.gc_')
        expansion = 4 if depth >= 50 else 1
        for stage in gc_stages:
            context_channels(STAGE_WIDTHS[stage] * expansion, gc_ratio, 'GCResNet.gc_')
        return gc_stages, gc_fusion_types

    @staticmethod
    def _check_resnet_args(depth, variant, num_stages):
        if depth not in ResNet_cfg:
            raise GCConfigError(f"GCResNet.depth: {depth!r} is not supported; allowed: "
                                f"{', '.join(map(str, SUPPORTED_DEPTHS))}")
        if variant not in SUPPORTED_VARIANTS:
            raise GCConfigError(f"GCResNet.variant: {variant!r} is not supported; allowed: "
                                f"{', '.join(SUPPORTED_VARIANTS)}")
        if isinstance(num_stages, bool) or not isinstance(num_stages, int) \
                or not 1 <= num_stages <= 4:
            raise GCConfigError(f"GCResNet.num_stages: {num_stages!r} is not allowed; use 1..4")

    @staticmethod
    def _check_stages(gc_stages, num_stages):
        if isinstance(gc_stages, int) and not isinstance(gc_stages, bool):
            gc_stages = [gc_stages]
        if not isinstance(gc_stages, (list, tuple)):
            raise GCConfigError(f"GCResNet.gc_stages: {gc_stages!r} is not allowed; give a "
                                f"list of stage indices in 0..{num_stages - 1} (res2..res5)")
        for stage in gc_stages:
            if isinstance(stage, bool) or not isinstance(stage, int) \
                    or not 0 <= stage < num_stages:
                raise GCConfigError(
                    f"GCResNet.gc_stages: {stage!r} is out of range; allowed stage indices "
                    f"are 0..{num_stages - 1} (0 = res2/c2 ... 3 = res5/c5)")
        if len(set(gc_stages)) != len(gc_stages):
            raise GCConfigError(f"GCResNet.gc_stages: {list(gc_stages)!r} repeats a stage")
        return sorted(gc_stages)
