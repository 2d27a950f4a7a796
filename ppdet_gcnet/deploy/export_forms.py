"""The graph rewrites an export applies to the eval-mode model before tracing, in one place.

Each rewrite swaps a layer (or a post-processing callable) for one computing the same function
in op forms the target runtime accepts. `prepare_for_export` runs them in `EXPORT_FORMS` order;
`ONNX_FORMS` are added when the export also writes `model.onnx`. A new rewrite is one entry:
`(name, function(model) -> count or dict of counts)`.
"""
from .lean_gc import use_lean_gc
from .onednn_safe import make_onednn_safe
from .raw_masks import use_raw_masks

# Always applied: Paddle Inference with oneDNN (the CPU default) needs the first; the second is
# the same function with less memory traffic under oneDNN (BENCHMARKS.md: GC cost 1.08 -> 1.02).
EXPORT_FORMS = [
    ('onednn_safe', make_onednn_safe),
    ('lean_gc', use_lean_gc),
]


def _onnx_forms(model):
    from .onnx_export import ExportError
    from .onnx_forms import make_onnx_exportable  # imports ppdet's heads: only when asked
    try:
        return make_onnx_exportable(model)
    except ValueError as e:  # a model the ONNX forms do not cover: one line for the user
        raise ExportError(f"--onnx: {e}")


# Applied when exporting for ONNX as well (see ppdet_gcnet.deploy.onnx_forms); the exported
# graph then takes one image per run.
ONNX_FORMS = [
    ('onnx_forms', _onnx_forms),
]


def prepare_for_export(model, raw_masks=False, onnx=False):
    """Apply the export rewrites to `model` in place (eval mode). Returns {name: counts}.
    `raw_masks`: the graph outputs [N, M, M] mask probabilities (a model without a mask head
    ignores it)."""
    model.eval()
    applied = {}
    forms = list(EXPORT_FORMS) + (list(ONNX_FORMS) if onnx else [])
    if raw_masks and getattr(model, 'mask_head', None) is not None:
        forms.append(('raw_masks', lambda m: int(use_raw_masks(m) is m)))
    for name, rewrite in forms:
        applied[name] = rewrite(model)
    return applied
