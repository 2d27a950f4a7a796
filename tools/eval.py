"""Evaluate a detector (COCO bbox / segm AP for the GCNet configs), e.g.

    python tools/eval.py -c configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml \
        -o weights=output/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco/model_final
"""
import _path  # noqa: F401

from ppdet_gcnet.cli import (build_parser, check_output_dir, load_tool_config, load_weights,
                             parse_args, require_weights, resolve_config_weights, run_tool)
from ppdet_gcnet.dataset_check import check_datasets


def make_parser():
    parser = build_parser(__doc__)
    parser.add_argument("--output_eval", default=None,
                        help="directory for the evaluation result files (bbox.json, ...)")
    parser.add_argument("--classwise", action='store_true', default=False,
                        help="also print per-class AP")
    parser.add_argument("--save_prediction_only", action='store_true', default=False,
                        help="save predictions without computing the metric")
    return parser


def main(argv=None):
    args = parse_args(make_parser(), argv)
    cfg = load_tool_config(args)
    resolve_config_weights(cfg, keys=('weights', ), config=args.config)
    require_weights(cfg)
    check_datasets(cfg, 'EvalDataset')
    if args.output_eval:
        check_output_dir(args.output_eval, '--output_eval')

    from ppdet.engine import Trainer
    trainer = Trainer(cfg, mode='eval')
    load_weights(trainer.model, cfg.weights)
    trainer.evaluate()


if __name__ == '__main__':
    run_tool(main)
