"""Builds many configs' full-size models in one process (run as a script: prints one JSON line
per config). ppdet's config is process-global, so the registry is restored before each load."""
import copy
import json
import sys


def describe(cfg, model):
    backbone = model.backbone
    res = backbone.res_layers
    conv2 = res[1].blocks[0].branch2b
    return {
        'architecture': type(model).__name__,
        'backbone': type(backbone).__name__,
        'depth': backbone.depth, 'variant': backbone.variant, 'groups': backbone.groups,
        'base_width': backbone.base_width, 'norm_type': backbone.norm_type,
        'freeze_at': backbone.freeze_at, 'freeze_norm': backbone.freeze_norm,
        'dcn_stages': backbone.dcn_v2_stages,
        'res3_conv2_weight': list(conv2.conv.weight.shape),
        'res3_stride_on_3x3': list(conv2.conv._stride) == [2, 2],
        'gc_blocks': [(b.in_channels, b.planes, b.pooling_type, list(b.fusion_types))
                      for b in getattr(backbone, 'gc_blocks', [])],
        'params': int(sum(p.size for p in model.parameters())),
        'has_mask': getattr(model, 'mask_head', None) is not None,
        'num_classes': cfg.num_classes,
        'epoch': cfg.epoch,
    }


def main(paths):
    import ppdet_gcnet  # noqa: F401
    from ppdet.core import workspace
    from ppdet.core.workspace import create, load_config
    registry = {k: copy.copy(v) for k, v in workspace.global_config.items()}
    for path in paths:
        workspace.global_config.clear()
        workspace.global_config.update({k: copy.copy(v) for k, v in registry.items()})
        cfg = load_config(path)
        model = create(cfg.architecture)
        print('CONFIG_JSON ' + json.dumps({'path': path, **describe(cfg, model)}), flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
