"""Export-time forms of the R-CNN inference stages that paddle2onnx cannot convert as ppdet
builds them, each computing the same function for one image in ops it converts:

- proposals.py: `generate_proposals` -> top-k, box decoding, clipping, size filter, NMS;
- roi_extractor.py: `distribute_fpn_proposals` -> level from the box area, per-level RoIAlign;
- detections.py: per-image-count `multiclass_nms3`, the batch loops' `repeat_interleave`, the
  placeholder's `assign_value_` and the mask head's `if` -> one-image forms;
- nms.py: the NMS form both Paddle and paddle2onnx run.

`make_onnx_exportable(model)` switches a model's layers to them in place (like
`make_onednn_safe`); the exported graph then takes one image per run.
"""
import paddle
from ppdet.modeling.heads.mask_head import MaskHead
from ppdet.modeling.heads.roi_extractor import RoIAlign
from ppdet.modeling.layers import RCNNBox
from ppdet.modeling.post_process import BBoxPostProcess
from ppdet.modeling.proposal_generator.rpn_head import RPNHead

from .detections import ExportableBBoxPostProcess, ExportableMaskHead, ExportableRCNNBox
from .proposals import ExportableRPNHead
from .roi_extractor import ExportableRoIAlign

from ...mmdet.mask_head import MMDetCascadeMaskHead  # noqa: E402
from ...mmdet.post_process import MMDetBBoxPostProcess  # noqa: E402


class ExportableMMDetBBoxPostProcess(MMDetBBoxPostProcess, ExportableBBoxPostProcess):
    """The one-image detections form, NMS labels kept as MMDetBBoxPostProcess keeps them."""


class ExportableMMDetCascadeMaskHead(ExportableMaskHead, MMDetCascadeMaskHead):
    """The one-image mask head form over MMDetCascadeMaskHead's averaged stage masks."""


SWITCHES = ((RPNHead, ExportableRPNHead), (RoIAlign, ExportableRoIAlign),
            (BBoxPostProcess, ExportableBBoxPostProcess), (MaskHead, ExportableMaskHead),
            (MMDetCascadeMaskHead, ExportableMMDetCascadeMaskHead),
            (MMDetBBoxPostProcess, ExportableMMDetBBoxPostProcess),
            (RCNNBox, ExportableRCNNBox))


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
    legacy = sorted({type(obj).__name__ for obj in _objects(model)
                     if type(obj).__module__.startswith('ppdet_gcnet.legacy')})
    if legacy:
        raise ValueError(f"the legacy heads ({', '.join(legacy)}) have no ONNX forms: export the "
                         "same weights with the dygraph config instead (configs/gcnet/, "
                         "e.g. mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml)")
    rpn = getattr(model, 'rpn_head', None)
    post = getattr(model, 'bbox_post_process', None)
    nms = getattr(post, 'nms', None)
    if rpn is None or post is None or nms is None:
        raise ValueError(f"{type(model).__name__}: the ONNX forms cover R-CNNs with an RPN and "
                         "multi-class NMS")
    top_n = rpn.test_proposal.post_nms_top_n
    if 0 < nms.nms_top_k < top_n:
        raise ValueError(f"MultiClassNMS nms_top_k {nms.nms_top_k} < post_nms_top_n {top_n}: "
                         "no ONNX form for a per-class pre-NMS cut")


def make_onnx_exportable(model):
    """Switch, in place, ppdet's RPNHead, RoIAlign, BBoxPostProcess and MaskHead in `model` to
    their one-image ONNX forms (with RCNNBox), and ppdet's own ONNX switch (`export_onnx`) of
    mask pasting on. Returns {class name: number switched}."""
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
