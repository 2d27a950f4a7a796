"""FPN RoIAlign without `distribute_fpn_proposals` (which paddle2onnx cannot convert).

`ExportableRoIAlign` is ppdet's RoIAlign with the level of each RoI computed as the op computes
it (pixel_offset=False): floor(log2(sqrt(w * h) / canonical_size + 1e-8) + canonical_level),
clipped to the FPN levels, with area 0 for an inverted box. Each level's RoIs (in their
original order) are pooled from that level, and the pooled features put back in RoI order.
One image per run (paddle2onnx's roi_align uses image 0 for every RoI).
"""
import paddle
from ppdet.modeling.heads.roi_extractor import RoIAlign


def fpn_levels(rois, min_level, max_level, canonical_level, canonical_size):
    """rois [N, 4] -> FPN level [N] (int64) of each, as distribute_fpn_proposals assigns it."""
    width = rois[:, 2] - rois[:, 0]
    height = rois[:, 3] - rois[:, 1]
    valid = paddle.logical_and(width >= 0, height >= 0)
    area = paddle.where(valid, width * height, paddle.zeros_like(width))
    level = paddle.floor(paddle.log2(paddle.sqrt(area) / canonical_size + 1e-8) +
                         canonical_level)
    return paddle.clip(level, min_level, max_level).astype('int64')


class ExportableRoIAlign(RoIAlign):

    def forward(self, feats, roi, rois_num):
        if len(feats) == 1 or self.training:
            return super().forward(feats, roi, rois_num)
        rois = paddle.concat(roi) if len(roi) > 1 else roi[0]
        offset = 2
        levels = fpn_levels(rois, self.start_level + offset, self.end_level + offset,
                            self.canconical_level, self.canonical_size)
        pooled, order = [], []
        for lvl in range(self.start_level, self.end_level + 1):
            index = paddle.nonzero(levels == lvl + offset).reshape([-1])
            level_rois = paddle.gather(rois, index)
            pooled.append(paddle.vision.ops.roi_align(
                x=feats[lvl], boxes=level_rois,
                boxes_num=paddle.shape(level_rois)[0:1].astype('int32'),
                output_size=self.resolution, spatial_scale=self.spatial_scale[lvl],
                sampling_ratio=self.sampling_ratio, aligned=self.aligned))
            order.append(index)
        restore = paddle.argsort(paddle.concat(order))
        return paddle.gather(paddle.concat(pooled), restore)
