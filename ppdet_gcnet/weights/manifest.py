"""The model zoo this project knows: every seed-table model and the ImageNet backbone.

Each entry says where the file lives, what format it is in (a legacy static-graph archive to
convert, or a dygraph `.pdparams`), which config it belongs to, and the checksum when one is
known. Nothing else is downloaded by name or URL: unknown URLs are refused, because a
`.pdparams` file is a pickle (see docs/weights.md).

No checksum of these files is published, and none could be taken here (no network), so
`sha256` is None for all of them today: the download then relies on the server's Content-MD5
header and the length. Pin a hash with `tools/download_weights.py NAME --print-sha256` on a
machine with network access, then fill it in below.
"""
from dataclasses import dataclass, field
from typing import Optional, Tuple

LEGACY_STATIC = 'legacy-static-archive'   # Paddle 1.x persistables, tar; needs conversion
PDPARAMS = 'pdparams'                      # dygraph state dict, loads as is
MMDET_PTH = 'mmdet-pth'                    # mmdetection PyTorch checkpoint; needs conversion


@dataclass(frozen=True)
class ModelEntry:
    name: str
    url: str
    format: str
    config: Optional[str]          # config (relative to the repo root) the weights belong to
    sha256: Optional[str] = None
    md5: Optional[str] = None
    box_ap: Optional[float] = None
    mask_ap: Optional[float] = None
    note: str = ''
    aliases: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def filename(self):
        return self.url.rstrip('/').rsplit('/', 1)[-1]


MODELS = (
    ModelEntry(
        name='mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco',
        url='https://paddlemodels.bj.bcebos.com/object_detection/'
            'mask_rcnn_r50_vd_fpn_gcb_add_r16_2x.tar',
        format=LEGACY_STATIC,
        config='configs/gcnet/legacy/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml',
        box_ap=41.4, mask_ap=36.8,
        note='seed row 1: Mask R-CNN R50-vd-FPN, GC(c3-c5, r16, add), 2x; legacy static graph '
             '(its config runs the legacy-exact pipeline)',
        aliases=('mask_rcnn_r50_vd_fpn_gcb_add_r16_2x',)),
    ModelEntry(
        name='mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco',
        url='https://paddlemodels.bj.bcebos.com/object_detection/'
            'mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x.tar',
        format=LEGACY_STATIC,
        config='configs/gcnet/legacy/mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco.yml',
        box_ap=40.7, mask_ap=36.1,
        note='seed row 2: Mask R-CNN R50-vd-FPN, GC(c3-c5, r16, mul), 2x; legacy static graph '
             '(its config runs the legacy-exact pipeline)',
        aliases=('mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x',)),
    ModelEntry(
        name='ResNet50_vd_pretrained',
        url='https://paddledet.bj.bcebos.com/models/pretrained/ResNet50_vd_pretrained.pdparams',
        format=PDPARAMS,
        config=None,
        note='ImageNet ResNet50-vd backbone (dygraph names); pretrain_weights of every config'),
    ModelEntry(
        name='ResNet18_vd_pretrained',
        url='https://paddledet.bj.bcebos.com/models/pretrained/ResNet18_vd_pretrained.pdparams',
        format=PDPARAMS,
        config=None,
        note='ImageNet ResNet18-vd backbone (dygraph names); the shapes fine-tune config'),
)


# mmdetection's GCNet zoo (its configs/gcnet/README.md): config/entry name, file stamp (the last 8
# hex digits are the start of the file's sha256, checked after download), box AP, mask AP.
_MMDET_GCNET = (
    ('mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco', '20200515_211915-187da160', 39.7, 35.9),
    ('mask_rcnn_r50_fpn_r4_gcb_c3-c5_1x_coco', '20200204-17235656', 39.9, 36.0),
    ('mask_rcnn_r101_fpn_r16_gcb_c3-c5_1x_coco', '20200205-e58ae947', 41.3, 37.2),
    ('mask_rcnn_r101_fpn_r4_gcb_c3-c5_1x_coco', '20200206-af22dc9d', 42.2, 37.8),
    ('mask_rcnn_r50_fpn_syncbn-backbone_1x_coco', '20200202-bb3eb55c', 38.4, 34.6),
    ('mask_rcnn_r50_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco', '20200202-587b99aa', 40.4, 36.2),
    ('mask_rcnn_r50_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco', '20200202-50b90e5c', 40.7, 36.5),
    ('mask_rcnn_r101_fpn_syncbn-backbone_1x_coco', '20200210-81658c8a', 40.5, 36.3),
    ('mask_rcnn_r101_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco', '20200207-945e77ca', 42.2, 37.8),
    ('mask_rcnn_r101_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco', '20200206-8407a3f0', 42.2, 37.8),
    ('mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco', '20200211-7584841c', 42.4, 37.7),
    ('mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco', '20200211-cbed3d2c',
     43.5, 38.6),
    ('mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco', '20200212-68164964',
     43.9, 39.0),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_1x_coco', '20200310-d5ad2a5e', 44.7, 38.6),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r16_gcb_c3-c5_1x_coco',
     '20200211-10bf2463', 46.2, 39.7),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_r4_gcb_c3-c5_1x_coco',
     '20200703_180653-ed035291', 46.4, 40.1),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_1x_coco',
     '20210615_211019-abbc39ea', 47.5, 40.9),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_r16_gcb_c3-c5_1x_coco',
     '20210615_215648-44aa598a', 48.0, 41.3),
    ('cascade_mask_rcnn_x101_32x4d_fpn_syncbn-backbone_dconv_c3-c5_r4_gcb_c3-c5_1x_coco',
     '20210615_161851-720338ec', 47.9, 41.1),
)
MODELS = MODELS + tuple(
    ModelEntry(
        name=name,
        url=f'https://download.openmmlab.com/mmdetection/v2.0/gcnet/{name}/{name}_{stamp}.pth',
        format=MMDET_PTH,
        config=f'configs/gcnet/{name}.yml',
        box_ap=box_ap, mask_ap=mask_ap,
        note='mmdetection GCNet zoo, COCO val2017, 1x; PyTorch checkpoint converted on first use')
    for name, stamp, box_ap, mask_ap in _MMDET_GCNET)


class UnknownWeightsError(LookupError):
    pass


def find_entry(value):
    """Manifest entry for a name, alias or exact URL (a trailing `.pdparams`-less form of a
    URL is not accepted: URLs must match), or None."""
    text = str(value).strip()
    for entry in MODELS:
        if text == entry.name or text in entry.aliases or text == entry.url:
            return entry
    return None


def get_entry(value):
    entry = find_entry(value)
    if entry is None:
        names = ', '.join(e.name for e in MODELS)
        raise UnknownWeightsError(f"{value!r} is not in the weights manifest (known: {names})")
    return entry
