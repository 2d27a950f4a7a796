"""Multi-class NMS in a static graph: built with the legacy op builder, which PIR rejects.

Defect: `ppdet.modeling.ops.multiclass_nms` (PaddleDetection 2.6), which `MultiClassNMS` calls
for every R-CNN detection, runs the C++ op directly in dygraph but in a static graph appends a
`multiclass_nms3` op through `LayerHelper.append_op`, the pre-PIR program builder. Paddle 3
builds static graphs in PIR by default (what `paddle.jit.to_static(full_graph=True)` and so
`Trainer.export` use); there the inputs are `pir.Value`s and the legacy builder raises
"The type of '%BBoxes' in operator multiclass_nms3 should be one of [str, bytes, Variable]".

Restores: PaddleDetection PR #9071 (develop, 2024-07, for Paddle 3) calls
`_C_ops.multiclass_nms3` in PIR mode too, so the exported program carries a
`pd_op.multiclass_nms3` with the same attributes and outputs (detections [No, 6], per-image
counts, optional index) as in dygraph.

Fix: `ops.multiclass_nms` is replaced by `multiclass_nms` below, which adds the PIR branch and
hands dygraph and the legacy static graph (FLAGS_enable_pir_api=0) to the original.
"""
import numpy as np

from ._patching import original, replace

NAME = 'multiclass_nms_pir'


def _ops_module():
    from ppdet.modeling import ops
    return ops


def _in_pir_static_graph():
    import paddle
    return not paddle.in_dynamic_mode() and paddle.framework.in_pir_mode()


def _not_to_static(function):
    import paddle
    return paddle.jit.not_to_static(function)


@_not_to_static
def multiclass_nms(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                   normalized=True, nms_eta=1., background_label=-1, return_index=False,
                   return_rois_num=True, rois_num=None, name=None):
    """ppdet's `multiclass_nms` contract: returns (detections, counts or None, index or None)."""
    if not _in_pir_static_graph():
        return original(multiclass_nms)(
            bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized,
            nms_eta, background_label, return_index, return_rois_num, rois_num, name)
    from paddle import _C_ops
    output, index, nms_rois_num = _C_ops.multiclass_nms3(
        bboxes, scores, rois_num, score_threshold, nms_top_k, keep_top_k, nms_threshold,
        normalized, nms_eta, background_label)
    output.stop_gradient = True
    index.stop_gradient = True
    return output, nms_rois_num if return_rois_num else None, index if return_index else None


def tiny_inputs():
    """One image, two classes, three boxes: boxes 0 and 1 overlap (IoU 0.81), box 2 is apart."""
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]]], 'float32')
    scores = np.array([[[0.9, 0.8, 0.1], [0.2, 0.3, 0.7]]], 'float32')
    return boxes, scores


def tiny_kwargs():
    return dict(score_threshold=0.15, nms_top_k=10, keep_top_k=10, nms_threshold=0.5,
                normalized=False, return_index=True)


def build_static_nms(main, startup):
    """Add the installed `ops.multiclass_nms` on placeholders to `main`; returns its outputs."""
    import paddle
    with paddle.static.program_guard(main, startup):
        boxes = paddle.static.data('boxes', [-1, 3, 4], 'float32')
        scores = paddle.static.data('scores', [-1, 2, 3], 'float32')
        return _ops_module().multiclass_nms(boxes, scores, **tiny_kwargs())


def probe():
    """True if building the installed `multiclass_nms` into a PIR program fails. False when
    static graphs are not PIR (FLAGS_enable_pir_api=0): the legacy builder is right there."""
    import paddle
    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        if not paddle.framework.in_pir_mode():
            return False
        build_static_nms(paddle.static.Program(), paddle.static.Program())
    except TypeError:
        return True
    finally:
        if was_dynamic:
            paddle.disable_static()
    return False


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    return [(_ops_module(), 'multiclass_nms')]


def apply():
    return replace(_ops_module(), 'multiclass_nms', multiclass_nms, NAME)
