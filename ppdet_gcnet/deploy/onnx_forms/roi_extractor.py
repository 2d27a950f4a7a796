"""FPN RoIAlign without `distribute_fpn_proposals` (which paddle2onnx cannot convert).

`ExportableRoIAlign` is ppdet's RoIAlign with the level of each RoI computed as the op computes
it (pixel_offset=False): floor(log2(sqrt(w * h) / canonical_size + 1e-8) + canonical_level),
clipped to the FPN levels, with area 0 for an inverted box (`pixel_offset`: the op's option, areas
`(w + 1) * (h + 1)`, set by the legacy extractor's form). Each level's RoIs (in their
original order) are pooled from that level, and the pooled features put back in RoI order.
One image per run (paddle2onnx's roi_align uses image 0 for every RoI).

paddle2onnx 2.1 converts every roi_align to ONNX RoiAlign in its default `half_pixel` mode,
which is `aligned=True`; an unaligned extractor (the legacy one) pools through
`unaligned_as_aligned` instead, so Paddle and the ONNX runtimes run the same aligned op.
"""
import paddle
from ppdet.modeling.heads.roi_extractor import RoIAlign


def fpn_levels(rois, min_level, max_level, canonical_level, canonical_size, pixel_offset=False):
    """rois [N, 4] -> FPN level [N] (int64) of each, as distribute_fpn_proposals assigns it."""
    width = rois[:, 2] - rois[:, 0]
    height = rois[:, 3] - rois[:, 1]
    valid = paddle.logical_and(width >= 0, height >= 0)
    if pixel_offset:
        width, height = width + 1, height + 1
    area = paddle.where(valid, width * height, paddle.zeros_like(width))
    level = paddle.floor(paddle.log2(paddle.sqrt(area) / canonical_size + 1e-8) +
                         canonical_level)
    return paddle.clip(level, min_level, max_level).astype('int64')


def unaligned_as_aligned(rois, spatial_scale):
    """rois [K, 4] -> RoIs in feature coordinates on which `roi_align(aligned=True,
    spatial_scale=1)` pools what `roi_align(aligned=False, spatial_scale)` pools on `rois`:
    no half-pixel shift, and RoIs under one feature pixel wide or high widened to one."""
    scaled = rois * spatial_scale
    start = scaled[:, :2] + 0.5
    size = paddle.maximum(scaled[:, 2:] - scaled[:, :2], paddle.ones_like(start))
    return paddle.concat([start, start + size], axis=1)


class ExportableRoIAlign(RoIAlign):
    pixel_offset = False

    def forward(self, feats, roi, rois_num):
        if len(feats) == 1 or self.training:
            return super().forward(feats, roi, rois_num)
        rois = paddle.concat(roi) if len(roi) > 1 else roi[0]
        offset = 2
        levels = fpn_levels(rois, self.start_level + offset, self.end_level + offset,
                            self.canconical_level, self.canonical_size, self.pixel_offset)
        pooled, order = [], []
        for lvl in range(self.start_level, self.end_level + 1):
            index = paddle.nonzero(levels == lvl + offset).reshape([-1])
            level_rois = paddle.gather(rois, index)
            scale = self.spatial_scale[lvl]
            if not self.aligned:
                level_rois, scale = unaligned_as_aligned(level_rois, scale), 1.0
            pooled.append(paddle.vision.ops.roi_align(
                x=feats[lvl], boxes=level_rois,
                boxes_num=paddle.shape(level_rois)[0:1].astype('int32'),
                output_size=self.resolution, spatial_scale=scale,
                sampling_ratio=self.sampling_ratio, aligned=True))
            order.append(index)
        restore = paddle.argsort(paddle.concat(order))
        return paddle.gather(paddle.concat(pooled), restore)
