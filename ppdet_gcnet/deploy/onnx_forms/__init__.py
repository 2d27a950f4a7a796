"""Export-time forms of the R-CNN inference stages that paddle2onnx cannot convert as ppdet
builds them, each computing the same function for one image in ops it converts:

- proposals.py: `generate_proposals` -> top-k, box decoding, clipping, size filter, NMS;
- roi_extractor.py: `distribute_fpn_proposals` -> level from the box area, per-level RoIAlign;
- detections.py: per-image-count `multiclass_nms3`, the batch loops' `repeat_interleave`, the
  placeholder's `assign_value_` and the mask head's `if` -> one-image forms;
- nms.py: the NMS form both Paddle and paddle2onnx run;
- legacy_proposals.py, legacy_detections.py: the same for the legacy pipeline's components
  (ppdet_gcnet.legacy: +1 pixel boxes, unaligned RoIAlign, the legacy mask paste).

`make_onnx_exportable(model)` switches a model's layers to them in place (like
`make_onednn_safe`); the exported graph then takes one image per run.
"""
import paddle
from ppdet.modeling.heads.mask_head import MaskHead
from ppdet.modeling.heads.roi_extractor import RoIAlign
from ppdet.modeling.layers import RCNNBox
from ppdet.modeling.post_process import BBoxPostProcess
from ppdet.modeling.proposal_generator.rpn_head import RPNHead

from ..lean_gc import LeanGCBottleNeck
from .detections import ExportableBBoxPostProcess, ExportableMaskHead, ExportableRCNNBox
from .gc_mul import OneImageLeanGCBottleNeck
from .proposals import ExportableRPNHead
from .roi_extractor import ExportableRoIAlign

from ...legacy.box_decode import LegacyBBoxPostProcess, LegacyRCNNBox  # noqa: E402
from ...legacy.mask_paste import LegacyMaskPostProcess  # noqa: E402
from ...legacy.proposals import LegacyRPNHead  # noqa: E402
from ...legacy.roi_extractor import LegacyMaskHead, LegacyRoIAlign  # noqa: E402
from ...mmdet.mask_head import MMDetCascadeMaskHead  # noqa: E402
from ...mmdet.post_process import MMDetBBoxPostProcess  # noqa: E402
from .legacy_detections import (ExportableLegacyBBoxPostProcess,  # noqa: E402
                                ExportableLegacyMaskPostProcess, ExportableLegacyRCNNBox)
from .legacy_proposals import ExportableLegacyRPNHead  # noqa: E402


class ExportableMMDetBBoxPostProcess(MMDetBBoxPostProcess, ExportableBBoxPostProcess):
    """The one-image detections form, NMS labels kept as MMDetBBoxPostProcess keeps them."""


class ExportableMMDetCascadeMaskHead(ExportableMaskHead, MMDetCascadeMaskHead):
    """The one-image mask head form over MMDetCascadeMaskHead's averaged stage masks."""


class ExportableLegacyRoIAlign(ExportableRoIAlign, LegacyRoIAlign):
    """The RoIAlign form with the legacy FPN levels (+1 pixel areas)."""
    pixel_offset = True


class ExportableLegacyMaskHead(ExportableMaskHead, LegacyMaskHead):
    """The one-image mask head form of the legacy mask head (its RoI extractor switched too)."""


SWITCHES = ((RPNHead, ExportableRPNHead), (RoIAlign, ExportableRoIAlign),
            (BBoxPostProcess, ExportableBBoxPostProcess), (MaskHead, ExportableMaskHead),
            (MMDetCascadeMaskHead, ExportableMMDetCascadeMaskHead),
            (MMDetBBoxPostProcess, ExportableMMDetBBoxPostProcess),
            (RCNNBox, ExportableRCNNBox), (LeanGCBottleNeck, OneImageLeanGCBottleNeck),
            (LegacyRPNHead, ExportableLegacyRPNHead), (LegacyRoIAlign, ExportableLegacyRoIAlign),
            (LegacyMaskHead, ExportableLegacyMaskHead), (LegacyRCNNBox, ExportableLegacyRCNNBox),
            (LegacyBBoxPostProcess, ExportableLegacyBBoxPostProcess),
            (LegacyMaskPostProcess, ExportableLegacyMaskPostProcess))
# Legacy components that act only while the model is built (from_config) or through the
# heads above (generators), and so need no form of their own.
LEGACY_WITHOUT_FORMS = {'LegacyAnchorGenerator', 'LegacyProposalGenerator', 'LegacyBBoxHead'}


def _objects(model):
    """The model's layers plus the ppdet (and our ppdet-derived) objects they hold
    (post-processing, decoders, RoI extractors are plain Python objects), depth first."""
    seen, found, stack = set(), [], [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        found.append(obj)
        children = list(vars(obj).values()) + list(getattr(obj, '_sub_layers', {}).values())
        stack.extend(child for child in children
                     if type(child).__module__.startswith(('ppdet.', 'ppdet_gcnet.')) or
                     isinstance(child, paddle.nn.Layer))
    return found


def check_supported(model):
    covered = LEGACY_WITHOUT_FORMS | {old.__name__ for old, _ in SWITCHES}
    legacy = sorted({type(obj).__name__ for obj in _objects(model)
                     if type(obj).__module__.startswith('ppdet_gcnet.legacy')} - covered)
    if legacy:
        raise ValueError(f"the legacy components {', '.join(legacy)} have no ONNX forms")
    rpn = getattr(model, 'rpn_head', None)
    post = getattr(model, 'bbox_post_process', None)
    nms = getattr(post, 'nms', None)
    if rpn is None or post is None or nms is None:
        raise ValueError(f"{type(model).__name__}: the ONNX forms cover R-CNNs with an RPN and "
                         "multi-class NMS")
    top_n = rpn.test_proposal.post_nms_top_n
    if getattr(nms, 'class_agnostic', False):  # its one group holds every class's boxes
        top_n *= post.num_classes
    if 0 < nms.nms_top_k < top_n:
        raise ValueError(f"{type(nms).__name__} nms_top_k {nms.nms_top_k} < the {top_n} boxes "
                         "it gets: no ONNX form for a pre-NMS cut")


def make_onnx_exportable(model):
    """Switch, in place, ppdet's RPNHead, RoIAlign, BBoxPostProcess and MaskHead in `model` to
    their one-image ONNX forms (with RCNNBox; the mmdetection and legacy pipelines' components
    likewise), and ppdet's own ONNX switch (`export_onnx`) of mask pasting on. Returns
    {class name: number switched}."""
    check_supported(model)
    switched = {new.__name__: 0 for _, new in SWITCHES}
    for obj in _objects(model):
        for old, new in SWITCHES:
            if type(obj) is old:
                obj.__class__ = new
                switched[new.__name__] += 1
        if type(obj).__name__ == 'MaskPostProcess':  # ppdet's own one-image pasting
            obj.export_onnx = True
    return switched
