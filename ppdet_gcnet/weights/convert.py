"""Legacy static-graph weights (archive, folder or `fluid.save` pickle) -> dygraph `.pdparams`.

The model decides what must be filled: its state dict (names, shapes, dtypes) is the target.
Each target name needs a rule from `legacy_names`; the legacy array the rule names must exist
and, after the rule's transform, have exactly the target's shape. Legacy arrays no rule uses
are reported (optimizer state separately); any unfilled target or shape mismatch is an error.
"""
import os
import tempfile
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from .archive import is_archive, safe_extract
from .download import publish
from .legacy_names import (ConversionRuleError, LegacyArch, is_optimizer_state,
                           mask_rcnn_rules)
from .legacy_pickle import is_pickle, load_array_pickle
from .lodtensor import load_lod_tensor_file, looks_like_lod_tensor


class ConversionError(ValueError):
    """Conversion cannot produce a complete, shape-correct state dict."""


@dataclass
class ConversionReport:
    filled: List[Tuple[str, str]] = field(default_factory=list)     # (dygraph, legacy)
    unfilled: List[str] = field(default_factory=list)
    missing_legacy: List[Tuple[str, str]] = field(default_factory=list)  # (dygraph, legacy)
    shape_errors: List[str] = field(default_factory=list)
    unmapped_legacy: List[str] = field(default_factory=list)
    optimizer_state: List[str] = field(default_factory=list)
    skipped_files: List[str] = field(default_factory=list)

    @property
    def ok(self):
        return not (self.unfilled or self.missing_legacy or self.shape_errors)

    def lines(self, limit=20):
        out = [f"filled {len(self.filled)} model parameters from legacy arrays"]

        def listing(title, items):
            if items:
                out.append(f"{title}: {len(items)}")
                out.extend(f"  {item}" for item in items[:limit])
                if len(items) > limit:
                    out.append(f"  ... {len(items) - limit} more")
        listing('model parameters without a mapping rule', self.unfilled)
        listing('model parameters whose legacy array is missing',
                [f"{dy} <- {lg}" for dy, lg in self.missing_legacy])
        listing('shape mismatches', self.shape_errors)
        listing('legacy arrays not used by any rule', self.unmapped_legacy)
        listing('legacy optimizer state skipped', self.optimizer_state)
        listing('files that are not LoDTensors (skipped)', self.skipped_files)
        return out


# ---------------------------------------------------------------- reading legacy weights

def _read_folder(folder):
    """Per-variable LoDTensor files (file name = variable name), else one weights pickle."""
    arrays, skipped, pickles, origin = {}, [], [], {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            if not os.path.isfile(path) or os.path.islink(path):
                skipped.append(os.path.relpath(path, folder))
                continue
            if filename.endswith(('.pdparams', '.pkl')) and is_pickle(path):
                pickles.append(path)
            elif looks_like_lod_tensor(path):
                if filename in arrays:
                    raise ConversionError(
                        f"{folder}: variable {filename!r} appears twice "
                        f"({origin[filename]} and {path})")
                arrays[filename] = load_lod_tensor_file(path)
                origin[filename] = path
            else:
                skipped.append(os.path.relpath(path, folder))
    if arrays:
        return arrays, skipped + [os.path.relpath(p, folder) for p in pickles]
    if len(pickles) == 1:
        return load_array_pickle(pickles[0]), skipped
    if len(pickles) > 1:
        raise ConversionError(f"{folder}: several weights pickles ({', '.join(pickles)}); "
                              f"pass the one to convert")
    raise ConversionError(f"{folder}: no legacy weights found (no LoDTensor variable files, "
                          f"no .pdparams pickle)")


def load_legacy_weights(source):
    """Folder, tar/zip archive, or single pickle -> (dict name -> ndarray, skipped files)."""
    source = str(source)
    if os.path.isdir(source):
        return _read_folder(source)
    if not os.path.isfile(source):
        raise ConversionError(f"{source}: no such file or folder")
    if is_pickle(source):
        return load_array_pickle(source), []
    if is_archive(source):
        with tempfile.TemporaryDirectory(prefix='legacy-weights-') as tmp:
            return _read_folder(safe_extract(source, os.path.join(tmp, 'x')))
    raise ConversionError(f"{source}: not a folder, tar/zip archive or weights pickle")


# ---------------------------------------------------------------- mapping

def convert_arrays(legacy, targets, rules=None):
    """legacy: name -> ndarray; targets: dygraph name -> (shape, dtype).
    Returns (state dict name -> ndarray, ConversionReport); the caller decides on report.ok."""
    rules = mask_rcnn_rules() if rules is None else rules
    report, state, used = ConversionReport(), {}, set()
    for name, (shape, dtype) in targets.items():
        rule = rules.get(name)
        if rule is None:
            report.unfilled.append(name)
            continue
        if rule.legacy_name not in legacy:
            report.missing_legacy.append((name, rule.legacy_name))
            continue
        used.add(rule.legacy_name)
        source = legacy[rule.legacy_name]
        try:
            array = rule.transform(np.asarray(source), rule.legacy_name)
        except ConversionRuleError as error:
            report.shape_errors.append(str(error))
            continue
        if tuple(array.shape) != tuple(shape):
            report.shape_errors.append(
                f"{name} {list(shape)} <- {rule.legacy_name} {list(source.shape)}"
                + (f" (after {rule.transform.__name__}: {list(array.shape)})"
                   if array.shape != source.shape else ''))
            continue
        state[name] = np.ascontiguousarray(array, dtype=dtype)
        report.filled.append((name, rule.legacy_name))
    for legacy_name in sorted(set(legacy) - used):
        (report.optimizer_state if is_optimizer_state(legacy_name)
         else report.unmapped_legacy).append(legacy_name)
    return state, report


def require_complete(report, source):
    if not report.ok:
        raise ConversionError(f"{source}: conversion incomplete -- "
                              + '; '.join(report.lines(limit=5)[1:6]))


# ---------------------------------------------------------------- the model side

def arch_from_config(cfg):
    """LegacyArch of a loaded ppdet config (GCResNet or plain ResNet Mask R-CNN)."""
    arch_name = cfg['architecture']
    backbone_name = cfg[arch_name]['backbone']
    backbone = cfg.get(backbone_name, {}) or {}
    gc_stages = tuple(s + 2 for s in backbone.get('gc_stages', [])) \
        if backbone_name == 'GCResNet' else ()
    fusion = backbone.get('gc_fusion_types', ['channel_add'])
    mask_feat = cfg.get('MaskFeat', {}) or {}
    return LegacyArch(
        depth=backbone.get('depth', 50), variant=backbone.get('variant', 'b'),
        gc_stages=gc_stages, gc_pooling=backbone.get('gc_pooling', 'att'),
        gc_fusion_types=tuple([fusion] if isinstance(fusion, str) else fusion),
        mask_num_convs=mask_feat.get('num_convs', 4))


def model_targets(config_path):
    """(targets name -> (shape, dtype), LegacyArch) of the config's model, built in a child
    process so the caller's global ppdet config stays as it is."""
    from .model_params import describe_model
    described = describe_model(config_path)
    targets = {name: (tuple(shape), np.dtype(dtype))
               for name, (shape, dtype) in described['params'].items()}
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in described['arch'].items()}
    return targets, LegacyArch(**arch)


def save_pdparams(state, out_path):
    """paddle.save to a temp file next to `out_path`, then fsync + atomic rename."""
    import paddle
    out_path = str(out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.convert-', suffix='.pdparams', dir=folder)
    os.close(fd)
    try:
        paddle.save(state, tmp)
        publish(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return out_path


def convert_legacy_weights(source, config_path, out_path, log=print):
    """The whole conversion; returns the report, raises ConversionError when incomplete."""
    legacy, skipped = load_legacy_weights(source)
    targets, arch = model_targets(config_path)
    state, report = convert_arrays(legacy, targets, mask_rcnn_rules(arch))
    report.skipped_files = skipped
    for line in report.lines():
        log(f"[convert] {line}")
    require_complete(report, source)
    save_pdparams(state, out_path)
    log(f"[convert] wrote {out_path}")
    return report
