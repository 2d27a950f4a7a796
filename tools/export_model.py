"""Export a trained detector as a Paddle Inference model, e.g.

    python tools/export_model.py -c configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml \
        -o weights=output/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco/model_final \
        --output_dir output_inference

writes PaddleDetection's deploy layout in <output_dir>/<config name>/: the static program
(`model.json`, Paddle 3's PIR format), its parameters (`model.pdiparams`) and `infer_cfg.yml`
(preprocessing, labels, architecture) for deploy/python/infer.py, through the project's one
exporter, `ppdet_gcnet.deploy.export.export_model`. Before tracing it swaps a few layers for
equal functions in op forms the runtimes accept (`ppdet_gcnet.deploy.export_forms`: e.g. FPN's
nearest upsampling and the GC blocks' multi-axis LayerNorm for Paddle Inference's oneDNN, the
CPU default); the weights and outputs stay the same.

With `--onnx`, `model.onnx` is written beside them (paddle2onnx; run it with
`deploy/python/infer.py --backend onnxruntime` or `--backend openvino`).

With `--raw_masks`, the graph outputs each kept detection's 28x28 mask probabilities instead of
masks pasted at full image size (PaddleDetection's form, which costs seconds per image on CPU);
`infer_cfg.yml` then says `mask_output: raw` and deploy/python/infer.py pastes only the kept
masks. Other PaddleDetection deploy code expects pasted masks, hence opt-in.

The exported Mask R-CNN takes a batch of images (of one padded size): `ppdet_gcnet.compat`'s
pir_ragged_batches fix keeps its per-image results joinable under PIR.
"""
import os

import _path  # noqa: F401

from ppdet_gcnet.cli import (build_parser, check_output_dir, load_tool_config, load_weights,
                             parse_args, require_weights,
                             resolve_config_weights, run_tool)


def make_parser():
    parser = build_parser(__doc__)
    parser.add_argument("--output_dir", default="output_inference",
                        help="the model goes to <output_dir>/<config file name>/")
    parser.add_argument("--raw_masks", action='store_true', default=False,
                        help="output raw 28x28 mask probabilities for deploy/python/infer.py "
                             "to paste (much faster on CPU) instead of pasted masks")
    parser.add_argument("--onnx", action='store_true', default=False,
                        help="also write model.onnx (ONNX Runtime, OpenVINO); needs paddle2onnx "
                             "(pip install -r requirements-onnx.txt)")
    return parser


def export_dir(cfg, output_dir):
    """PaddleDetection's layout: <output_dir>/<config file name without extension>."""
    return os.path.join(output_dir, os.path.splitext(os.path.basename(cfg.filename))[0])


def main(argv=None):
    args = parse_args(make_parser(), argv)
    if args.onnx:
        from ppdet_gcnet.deploy.onnx_export import require_paddle2onnx
        require_paddle2onnx()  # before anything is loaded: fail fast
    cfg = load_tool_config(args, exclude_args=('config', 'opt', 'slim_config', 'output_dir',
                                               'raw_masks', 'onnx'))
    resolve_config_weights(cfg, keys=('weights', ), config=args.config)
    require_weights(cfg)
    check_output_dir(args.output_dir)
    if cfg.get('norm_type') == 'sync_bn':  # inference has no cross-device batch norm
        cfg['norm_type'] = 'bn'

    from ppdet.engine import Trainer
    from ppdet.utils.logger import setup_logger
    from ppdet_gcnet.deploy.export import export_model
    trainer = Trainer(cfg, mode='test')
    load_weights(trainer.model, cfg.weights)
    logger = setup_logger('export_model')
    model_dir = export_dir(cfg, args.output_dir)
    export_model(cfg, trainer.model, model_dir, raw_masks=args.raw_masks, onnx=args.onnx,
                 log=logger.info)
    logger.info('Exported to %s', model_dir)
    return model_dir


if __name__ == '__main__':
    run_tool(main)
