"""Legacy RoI features (the legacy FPNRoIAlign).

- FPN level of a RoI from its area with +1 pixel widths, `(x2 - x1 + 1) * (y2 - y1 + 1)`
  (`distribute_fpn_proposals` with `pixel_offset=True`; ppdet passes no offset);
- fluid `roi_align`: no half-pixel shift (`aligned: false`), 2x2 samples per bin
  (`sampling_ratio: 2`), set in the legacy config for both heads.

The box and mask heads build this extractor from the same `roi_extractor` dict as ppdet's heads.
"""
import paddle
from ppdet.core.workspace import register, serializable
from ppdet.modeling.heads.bbox_head import BBoxHead
from ppdet.modeling.heads.mask_head import MaskHead
from ppdet.modeling.heads.roi_extractor import RoIAlign


@register
@serializable
class LegacyRoIAlign(RoIAlign):
    def forward(self, feats, roi, rois_num):
        roi = paddle.concat(roi) if len(roi) > 1 else roi[0]
        if len(feats) == 1:
            return super().forward(feats, [roi], rois_num)
        rois_dist, restore_index, rois_num_dist = paddle.vision.ops.distribute_fpn_proposals(
            roi, self.start_level + 2, self.end_level + 2, self.canconical_level,
            self.canonical_size, pixel_offset=True, rois_num=rois_num)
        level_feats = [
            paddle.vision.ops.roi_align(
                x=feats[level], boxes=rois_dist[level], boxes_num=rois_num_dist[level],
                output_size=self.resolution, spatial_scale=self.spatial_scale[level],
                sampling_ratio=self.sampling_ratio, aligned=self.aligned)
            for level in range(self.start_level, self.end_level + 1)]
        return paddle.gather(paddle.concat(level_feats), restore_index)


def _with_legacy_roi_align(kwargs):
    if isinstance(kwargs.get('roi_extractor'), dict):
        kwargs['roi_extractor'] = LegacyRoIAlign(**kwargs['roi_extractor'])
    return kwargs


@register
class LegacyBBoxHead(BBoxHead):
    """ppdet's box head with the legacy RoI extractor."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        return _with_legacy_roi_align(super().from_config(cfg, input_shape))


@register
class LegacyMaskHead(MaskHead):
    """ppdet's mask head with the legacy RoI extractor."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        return _with_legacy_roi_align(super().from_config(cfg, input_shape))
