"""mmdetection checkpoint (`.pth`) -> `.pdparams` for one of configs/gcnet's mmdetection rows.

The config's model decides what must be filled (names, shapes, dtypes, built in a child process);
`mmdet_names` says where each parameter comes from. Every checkpoint tensor must be used, except
BN step counters and, for a Cascade Mask R-CNN config with ppdet's single MaskHead, the mask
heads of the first two stages (the mmdetection rows use MMDetCascadeMaskHead, which has all
three): an unused tensor means the config does not match the checkpoint (e.g. GC weights into a
control config) and is an error.
"""
import re

from .convert import ConversionError, convert_arrays, model_targets, save_pdparams
from .mmdet_checkpoint import load_state_dict
from .mmdet_names import is_ignorable, mmdet_rules


def cascade_stages(targets):
    return len([n for n in targets if re.fullmatch(r'bbox_head\.bbox_score_stage\d+\.weight', n)])


def _dropped_mask_head(name, stages, targets):
    """A first stages' mask head tensor the model has no place for (a cascade config with
    ppdet's single MaskHead instead of MMDetCascadeMaskHead)."""
    if not stages or any(t.startswith('mask_head.stage_heads.') for t in targets):
        return False
    return any(name.startswith(f'roi_head.mask_head.{s}.') for s in range(stages - 1))


def convert_mmdet_arrays(arrays, targets):
    """(state dict, report, ignored names, dropped names); raises ConversionError when a target
    is unfilled or a checkpoint tensor is left unexplained."""
    stages = cascade_stages(targets)
    state, report = convert_arrays(arrays, targets, mmdet_rules(targets, stages))
    ignored = [n for n in report.unmapped_legacy if is_ignorable(n)]
    dropped = [n for n in report.unmapped_legacy if _dropped_mask_head(n, stages, targets)]
    report.unmapped_legacy = [n for n in report.unmapped_legacy
                              if n not in set(ignored) | set(dropped)]
    return state, report, ignored, dropped


def report_lines(report, ignored, dropped):
    lines = [line.replace('legacy arrays', 'checkpoint tensors')
                 .replace('legacy array', 'checkpoint tensor') for line in report.lines()]
    if ignored:
        lines.append(f"BN step counters ignored (not parameters): {len(ignored)}")
    if dropped:
        lines.append(f"cascade mask heads of the first stages not used (ppdet's CascadeRCNN has "
                     f"one mask head, given mmdetection's last): {len(dropped)} tensors")
    return lines


def convert_mmdet_weights(source, config_path, out_path, log=print):
    arrays, meta = load_state_dict(source)
    targets, _ = model_targets(config_path)
    state, report, ignored, dropped = convert_mmdet_arrays(arrays, targets)
    for line in report_lines(report, ignored, dropped):
        log(f"[convert] {line}")
    problems = report.unfilled + [f"{a} <- {b}" for a, b in report.missing_legacy] \
        + report.shape_errors + report.unmapped_legacy
    if problems:
        raise ConversionError(
            f"{source}: does not match {config_path}: {len(problems)} problems, first: "
            f"{problems[0]} (unfilled {len(report.unfilled)}, missing "
            f"{len(report.missing_legacy)}, shape {len(report.shape_errors)}, unused "
            f"{len(report.unmapped_legacy)})")
    classes = meta.get('CLASSES')
    if isinstance(classes, (list, tuple)):
        log(f"[convert] checkpoint classes: {len(classes)} ({', '.join(map(str, classes[:3]))}, ...)")
    save_pdparams(state, out_path)
    log(f"[convert] wrote {out_path}")
    return report


def check_published_hash(path):
    """mmdetection names published checkpoints `<name>-<first 8 hex of sha256>.pth`; a file whose
    hash does not start so is not the published one."""
    from .download import file_digest
    m = re.search(r'-([0-9a-f]{8})\.pth$', str(path))
    if not m:
        return None
    digest = file_digest(path, 'sha256')
    if not digest.startswith(m.group(1)):
        raise ConversionError(f"{path}: sha256 {digest[:8]}... does not match the "
                              f"{m.group(1)} in its published name")
    return digest
