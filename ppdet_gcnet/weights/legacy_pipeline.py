"""Config overrides that bring our dygraph Mask R-CNN closer to the legacy static pipeline the
converted GCNet weights were trained and evaluated with (facts and reasons: docs/weights.md,
"Legacy vs dygraph pipeline").

Only switches PaddleDetection 2.6 exposes are here; the remaining differences (the +1 pixel
convention inside proposal generation, RoI level assignment, box decoding and clipping, and
the rounded aspect-ratio anchor sizes) have no config switch.

Each value is one `-o KEY=VALUE` override; nested dicts are given whole because ppdet's `-o`
parser resets a nested dict for every dotted key (so `A.b.c=1 A.b.d=2` would keep only `d`).
"""

# key -> (value, why)
LEGACY_EVAL_OVERRIDES = {
    # anchors centred in their cell as fluid's anchor_generator (offset 0.5, +1 widths) put
    # them; ppdet's default 0 puts them on the cell corner, half a stride away.
    'RPNHead.anchor_generator.offset': (0.5, 'anchor centres at (i + 0.5) * stride'),
    # fluid roi_align had no `aligned` half-pixel shift; the legacy FPNRoIAlign used
    # sampling_ratio 2 for both heads.
    'BBoxHead.roi_extractor': ({'resolution': 7, 'sampling_ratio': 2, 'aligned': False},
                               'legacy roi_align: no half-pixel offset, 2x2 samples per bin'),
    'MaskHead.roi_extractor': ({'resolution': 14, 'sampling_ratio': 2, 'aligned': False},
                               'legacy roi_align: no half-pixel offset, 2x2 samples per bin'),
    # legacy MultiClassNMS(normalized=False): IoU with +1 pixel widths.
    'BBoxPostProcess.nms.normalized': (False, 'legacy NMS IoU with +1 pixel widths'),
    # legacy bbox2json wrote w = x2 - x1 + 1; ppdet adds 1 when `bias` is set.
    'bias': (True, 'COCO json widths/heights + 1 as the legacy evaluation wrote them'),
}


def _yaml_value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k}: {_yaml_value(v)}' for k, v in value.items()) + '}'
    return str(value)


def legacy_eval_opts():
    """The overrides as `-o` arguments, e.g. for `tools/eval.py ... -o weights=X <these>`."""
    return [f'{key}={_yaml_value(value)}' for key, (value, _) in LEGACY_EVAL_OVERRIDES.items()]


def legacy_eval_config():
    """The overrides as a nested dict for `ppdet.core.workspace.merge_config`."""
    nested = {}
    for key, (value, _) in LEGACY_EVAL_OVERRIDES.items():
        parts = key.split('.')
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


if __name__ == '__main__':
    print(' '.join(repr(opt) if ' ' in opt else opt for opt in legacy_eval_opts()))
