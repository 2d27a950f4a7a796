"""Export a trained detector as a Paddle Inference model, e.g.

    python tools/export_model.py -c configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml \
        -o weights=output/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco/model_final \
        --output_dir output_inference

writes PaddleDetection's deploy layout in <output_dir>/<config name>/: the static program
(`model.json`, Paddle 3's PIR format), its parameters (`model.pdiparams`) and `infer_cfg.yml`
(preprocessing, labels, architecture) for deploy/python/infer.py. Built on ppdet's
`Trainer.export`; the fixes it needs on Paddle 3 are applied by `ppdet_gcnet.compat` when the
config is loaded. Before tracing, `ppdet_gcnet.deploy.make_onednn_safe` swaps FPN's nearest
upsampling and the GC blocks' multi-axis LayerNorm for equal functions that Paddle Inference's
oneDNN (the CPU default) can run; the weights and outputs stay the same.

With `--raw_masks`, the graph outputs each kept detection's 28x28 mask probabilities instead of
masks pasted at full image size (PaddleDetection's form, which costs seconds per image on CPU);
`infer_cfg.yml` then says `mask_output: raw` and deploy/python/infer.py pastes only the kept
masks. Other PaddleDetection deploy code expects pasted masks, hence opt-in.

The exported Mask R-CNN takes a batch of images (of one padded size): `ppdet_gcnet.compat`'s
pir_ragged_batches fix keeps its per-image results joinable under PIR.
"""
import os

import _path  # noqa: F401

from ppdet_gcnet.cli import (build_parser, load_tool_config, parse_args, require_weights,
                             resolve_config_weights, run_tool)


def make_parser():
    parser = build_parser(__doc__)
    parser.add_argument("--output_dir", default="output_inference",
                        help="the model goes to <output_dir>/<config file name>/")
    parser.add_argument("--raw_masks", action='store_true', default=False,
                        help="output raw 28x28 mask probabilities for deploy/python/infer.py "
                             "to paste (much faster on CPU) instead of pasted masks")
    return parser


def mark_raw_masks(infer_cfg_path):
    """Tell deploy/python/infer.py that the graph's masks are raw probabilities."""
    import yaml
    with open(infer_cfg_path) as f:
        infer_cfg = yaml.safe_load(f)
    infer_cfg['mask_output'] = 'raw'
    with open(infer_cfg_path + '.tmp', 'w') as f:
        yaml.safe_dump(infer_cfg, f, sort_keys=False)
    os.replace(infer_cfg_path + '.tmp', infer_cfg_path)


def export_dir(cfg, output_dir):
    """Where `Trainer.export` writes: <output_dir>/<config file name without extension>."""
    return os.path.join(output_dir, os.path.splitext(os.path.basename(cfg.filename))[0])


def main(argv=None):
    args = parse_args(make_parser(), argv)
    cfg = load_tool_config(args, exclude_args=('config', 'opt', 'slim_config', 'output_dir',
                                                'raw_masks'))
    resolve_config_weights(cfg, keys=('weights', ))
    require_weights(cfg)
    if cfg.get('norm_type') == 'sync_bn':  # inference has no cross-device batch norm
        cfg['norm_type'] = 'bn'

    from ppdet.engine import Trainer
    from ppdet.utils.logger import setup_logger
    from ppdet_gcnet.deploy import make_onednn_safe
    trainer = Trainer(cfg, mode='test')
    trainer.load_weights(cfg.weights)
    switched = make_onednn_safe(trainer.model)
    setup_logger('export_model').info(
        'oneDNN-safe forms: %s', ', '.join(f'{name} x{count}' for name, count in switched.items()))
    raw_masks = args.raw_masks and getattr(trainer.model, 'mask_head', None) is not None
    if raw_masks:
        from ppdet_gcnet.deploy.raw_masks import use_raw_masks
        use_raw_masks(trainer.model)
    trainer.export(args.output_dir)
    model_dir = export_dir(cfg, args.output_dir)
    if raw_masks:
        mark_raw_masks(os.path.join(model_dir, 'infer_cfg.yml'))
    return model_dir


if __name__ == '__main__':
    run_tool(main)
