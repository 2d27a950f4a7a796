"""The mmdetection GCNet zoo rows this project ships as configs, with the figures mmdetection
publishes for them (configs/gcnet/README.md in mmdetection, COCO val2017, 1x): one source of
truth for the config, manifest and README tests."""
from collections import namedtuple

Row = namedtuple('Row', 'name arch depth groups syncbn dcn ratio box_ap mask_ap control')

# name, arch, depth, groups (1 = ResNet, 32 = ResNeXt 32x4d), SyncBN, DCN c3-c5, GC ratio
# (None = no GC), box AP, mask AP, the control row it is compared with
MMDET_ROWS = tuple(Row(*r) for r in (
    ('mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco', 'MaskRCNN', 50, 1, False, False, 1 / 16, 39.7, 35.9,
     'mask_rcnn_r50_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_r50_fpn_r4_gcb_c3-c5_1x_coco', 'MaskRCNN', 50, 1, False, False, 1 / 4, 39.9, 36.0,
     'mask_rcnn_r50_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_r101_fpn_r16_gcb_c3-c5_1x_coco', 'MaskRCNN', 101, 1, False, False, 1 / 16, 41.3,
     37.2, 'mask_rcnn_r101_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_r101_fpn_r4_gcb_c3-c5_1x_coco', 'MaskRCNN', 101, 1, False, False, 1 / 4, 42.2, 37.8,
     'mask_rcnn_r101_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_r50_fpn_syncbn-backbone_1x_coco', 'MaskRCNN', 50, 1, True, False, None, 38.4, 34.6,
     None),
    ('mask_rcnn_r50_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco', 'MaskRCNN', 50, 1, True, False,
     1 / 16, 40.4, 36.2, 'mask_rcnn_r50_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_r50_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco', 'MaskRCNN', 50, 1, True, False,
     1 / 4, 40.7, 36.5, 'mask_rcnn_r50_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_r101_fpn_syncbn-backbone_1x_coco', 'MaskRCNN', 101, 1, True, False, None, 40.5,
     36.3, None),
    ('mask_rcnn_r101_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco', 'MaskRCNN', 101, 1, True, False,
     1 / 16, 42.2, 37.8, 'mask_rcnn_r101_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_r101_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco', 'MaskRCNN', 101, 1, True, False,
     1 / 4, 42.2, 37.8, 'mask_rcnn_r101_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco', 'MaskRCNN', 101, 32, True, False, None,
     42.4, 37.7, None),
    ('mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco', 'MaskRCNN', 101, 32, True,
     False, 1 / 16, 43.5, 38.6, 'mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco'),
    ('mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco', 'MaskRCNN', 101, 32, True,
     False, 1 / 4, 43.9, 39.0, 'mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco'),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco', 'CascadeRCNN', 101, 32, True,
     False, None, 44.7, 38.6, None),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco', 'CascadeRCNN', 101,
     32, True, False, 1 / 16, 46.2, 39.7, 'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco'),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco', 'CascadeRCNN', 101,
     32, True, False, 1 / 4, 46.4, 40.1, 'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco'),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_1x_coco', 'CascadeRCNN', 101,
     32, True, True, None, 47.5, 40.9, 'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco'),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_r16_gcb_c3-c5_1x_coco',
     'CascadeRCNN', 101, 32, True, True, 1 / 16, 48.0, 41.3,
     'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_1x_coco'),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_r4_gcb_c3-c5_1x_coco',
     'CascadeRCNN', 101, 32, True, True, 1 / 4, 47.9, 41.1,
     'cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_1x_coco'),
))

# Box-only GC rows on ResNet50-vd (no published weights) and the seed control they extend.
BOX_ONLY_ROWS = ('faster_rcnn_r50_vd_fpn_gcb_add_r16_1x_coco',
                 'cascade_rcnn_r50_vd_fpn_gcb_add_r16_1x_coco')

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
