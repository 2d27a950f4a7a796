"""Run a detector on images and draw the results, e.g.

    python tools/infer.py -c configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml \
        -o weights=... --infer_img demo.jpg --output_dir output/infer
"""
import _path  # noqa: F401

from ppdet_gcnet.cli import (build_parser, check_output_dir, collect_images, load_tool_config,
                             load_weights, parse_args, require_weights, resolve_config_weights,
                             run_tool, ToolError)
from ppdet_gcnet.dataset_check import check_datasets


def make_parser():
    parser = build_parser(__doc__)
    parser.add_argument("--infer_img", default=None, help="one image to run on")
    parser.add_argument("--infer_dir", default=None,
                        help="a directory of images (ignored when --infer_img is given)")
    parser.add_argument("--output_dir", default="output",
                        help="where visualised images (and results) are written")
    parser.add_argument("--draw_threshold", type=float, default=0.5,
                        help="score threshold for drawing")
    parser.add_argument("--save_results", action='store_true', default=False,
                        help="also write the detections as bbox.json / mask.json")
    parser.add_argument("--visualize", type=lambda s: s.lower() in ('1', 'true', 'yes'),
                        default=True, help="draw the detections (default true)")
    parser.add_argument("--use_vdl", action='store_true', default=False,
                        help="log drawn images to VisualDL")
    parser.add_argument("--vdl_log_dir", default="vdl_log_dir/image",
                        help="VisualDL log directory")
    return parser


def main(argv=None):
    args = parse_args(make_parser(), argv)
    if not 0.0 <= args.draw_threshold <= 1.0:
        raise ToolError(f"--draw_threshold {args.draw_threshold}: must be within [0, 1]")
    images = collect_images(args.infer_img, args.infer_dir)
    cfg = load_tool_config(args)
    resolve_config_weights(cfg, keys=('weights', ), config=args.config)
    require_weights(cfg)
    check_datasets(cfg, 'TestDataset')
    check_output_dir(args.output_dir)

    from ppdet.engine import Trainer
    trainer = Trainer(cfg, mode='test')
    load_weights(trainer.model, cfg.weights)
    trainer.predict(images, draw_threshold=args.draw_threshold, output_dir=args.output_dir,
                    save_results=args.save_results, visualize=args.visualize)


if __name__ == '__main__':
    run_tool(main)
