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
        config='configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml',
        box_ap=41.4, mask_ap=36.8,
        note='seed row 1: Mask R-CNN R50-vd-FPN, GC(c3-c5, r16, add), 2x; legacy static graph',
        aliases=('mask_rcnn_r50_vd_fpn_gcb_add_r16_2x',)),
    ModelEntry(
        name='mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco',
        url='https://paddlemodels.bj.bcebos.com/object_detection/'
            'mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x.tar',
        format=LEGACY_STATIC,
        config='configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco.yml',
        box_ap=40.7, mask_ap=36.1,
        note='seed row 2: Mask R-CNN R50-vd-FPN, GC(c3-c5, r16, mul), 2x; legacy static graph',
        aliases=('mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x',)),
    ModelEntry(
        name='ResNet50_vd_pretrained',
        url='https://paddledet.bj.bcebos.com/models/pretrained/ResNet50_vd_pretrained.pdparams',
        format=PDPARAMS,
        config=None,
        note='ImageNet ResNet50-vd backbone (dygraph names); pretrain_weights of every config'),
)


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
