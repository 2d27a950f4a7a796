"""The legacy-exact pipeline, by seed row: which config evaluates a legacy (Paddle 1.x
static-graph) model the way the legacy code did, and which components that config swaps in.

The components live in `ppdet_gcnet.legacy` (one module per stage) and are chosen in
configs/gcnet/legacy/_base_/legacy_pipeline.yml; docs/weights.md says what each changes, why,
and how exactly the pipeline reproduces the legacy detections.
"""
from .manifest import LEGACY_STATIC, MODELS

# MaskRCNN section key -> the component the legacy configs choose (ppdet's default in brackets)
LEGACY_COMPONENTS = {
    'rpn_head': 'LegacyRPNHead',                  # (RPNHead)
    'bbox_head': 'LegacyBBoxHead',                # (BBoxHead)
    'mask_head': 'LegacyMaskHead',                # (MaskHead)
    'bbox_post_process': 'LegacyBBoxPostProcess',  # (BBoxPostProcess)
    'mask_post_process': 'LegacyMaskPostProcess',  # (MaskPostProcess)
}


def legacy_configs():
    """Manifest name -> config (relative to the repository root) of every legacy model."""
    return {entry.name: entry.config for entry in MODELS if entry.format == LEGACY_STATIC}


def eval_command(name):
    return f"python tools/eval.py -c {legacy_configs()[name]} -o weights={name}"


if __name__ == '__main__':
    for model_name in legacy_configs():
        print(eval_command(model_name))
