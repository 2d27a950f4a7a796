"""Repairs for an installed PaddleDetection that predates this Paddle.

PaddleDetection on PyPI stops at 2.6.0, written for Paddle 2.4. Paddle 2.5 made integer indexing
return 0-D tensors, Paddle 3 made PIR the default static graph and partial-graph (SOT) the
default of `to_static`, and Pillow 10 removed `ImageDraw.textsize`; upstream PaddleDetection
>= 2.7 adapted, the PyPI release did not. Each module here repairs one defect:

    rpn_proposals         RPNHead._gen_proposal             0-D proposal counts concatenated
    proposal_targets      target.generate_proposal_target   0-D RoI counts concatenated
    mask_targets          target.generate_mask_target       0-D mask RoI counts concatenated
    bbox_post_process     BBoxPostProcess.get_pred          0-D counts / scale factors concatenated
    visualizer_font_cache visualizer.get_path (upstream)    label font cached under a literal ~
    visualizer_text_size  visualizer.draw_bbox              ImageDraw.textsize gone (Pillow 10)
    export_full_graph     Trainer._get_infer_cfg_and_input_spec   to_static without full_graph
    multiclass_nms_pir    ops.multiclass_nms                legacy op builder under PIR
    pir_ragged_batches    RPNHead._gen_proposal, RCNNBox.__call__, get_pred, static graph
                          only: per-image lists PIR cannot join when their sizes differ
    atomic_checkpoints    checkpoint.save_model             checkpoints written in place (a
                          kill mid-write leaves a truncated file): temp + fsync + rename
                          (upstream writes in place too, so this one applies there as well)
    cascade_rois          CascadeHead._get_rois_from_boxes  0-D stage RoI counts concatenated

Its `probe()` runs the installed code on a tiny input (export_full_graph: a source check plus a
tiny Paddle check; pir_ragged_batches: traced into a PIR program) and reports whether the defect
is present; its `apply()` replaces the wrong function(s), idempotently. A later fix may replace
an earlier fix's replacement (pir_ragged_batches adds the static-graph path on top of the 0-D
fixes and hands dygraph to them). Importing this package applies every fix whose probe fires, so
a PaddleDetection that already behaves is left untouched; `applied_fixes()` names the fixes
applied in this process.
"""
import logging

from . import (atomic_checkpoints, bbox_post_process, cascade_rois, export_full_graph,
               mask_targets, multiclass_nms_pir, pir_ragged_batches, proposal_targets, rpn_proposals,
               visualizer_font_cache, visualizer_text_size)

logger = logging.getLogger(__name__)

# Order follows the Mask R-CNN pipeline; every entry has NAME, probe(), apply() and
# replaced_attributes().
FIXES = (rpn_proposals, proposal_targets, mask_targets, bbox_post_process, visualizer_font_cache,
         visualizer_text_size, export_full_graph, multiclass_nms_pir, pir_ragged_batches,
         atomic_checkpoints, cascade_rois)

_applied = []


def apply_all():
    """Probe every fix and apply those whose defect is present; returns the names applied now."""
    from paddle.utils import unique_name
    applied_now = []
    for fix in FIXES:
        if fix.NAME in _applied:
            continue
        # Probes build tiny layers and programs; their names must not shift the names (and so
        # the checkpoint keys of optimizer state) of the models built after this import.
        try:
            with unique_name.guard():
                present = fix.probe()
        except Exception as error:  # a ppdet laid out differently: cannot tell, so leave it
            logger.warning('ppdet_gcnet.compat: probe %s could not run (%s: %s); not applied',
                           fix.NAME, type(error).__name__, error)
            continue
        if not present:
            continue
        fix.apply()
        _applied.append(fix.NAME)
        applied_now.append(fix.NAME)
    if applied_now:
        logger.info('ppdet_gcnet.compat applied: %s', ', '.join(applied_now))
    return applied_now


def applied_fixes():
    """Names of the fixes applied in this process, in the order applied."""
    return tuple(_applied)


apply_all()
