"""Show what every GC block of a detector attends to, and how much each block contributes, e.g.

    python tools/visualize_context.py -c configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml \
        -o weights=... --infer_img demo.jpg --output_dir output/context

Per image, OUTPUT_DIR/<image name>/ gets one heat-map overlay per GC block (<block>.png, at the
image's size), summary.png (stages as rows, blocks as columns), report.json and report.png
(attention entropy relative to uniform, mass on the top 1 % of positions, fusion-term magnitude).
Images go through the config's TestDataset/TestReader as in ppdet's inference; only the backbone
runs. `-o weights=null` shows the maps of an untrained (randomly initialised) model.
"""
import _path  # noqa: F401

from ppdet_gcnet.cli import (ToolError, build_parser, load_tool_config, parse_args,
                             load_weights, require_weights, resolve_config_weights,
                             run_tool)
from ppdet_gcnet.cli import check_output_dir as check_writable


def make_parser():
    parser = build_parser(__doc__)
    parser.add_argument("--infer_img", default=None, help="one image to visualise")
    parser.add_argument("--infer_dir", default=None,
                        help="a directory of images (ignored when --infer_img is given)")
    parser.add_argument("--output_dir", default="output/context",
                        help="where the per-image folders are written")
    return parser


def build_model(cfg, config):
    from ppdet.core.workspace import create
    from ppdet.utils.logger import setup_logger

    model = create(cfg.architecture)
    if cfg.get('weights') is None:
        setup_logger('visualize_context').warning(
            'weights: null, so these are the maps of a randomly initialised model')
        return model
    resolve_config_weights(cfg, keys=('weights', ), config=config)
    load_weights(model, require_weights(cfg))
    return model


def build_loader():
    """ppdet's own test pipeline: the config's TestDataset (an ImageFolder) and TestReader."""
    from ppdet.core.workspace import create
    return create('TestDataset')(), lambda dataset: create('TestReader')(dataset, 0)


def main(argv=None):
    from ppdet_gcnet.analysis.context_capture import NoGCBlockError
    from ppdet_gcnet.analysis.context_inputs import (InputError, check_output_dir,
                                                     collect_images)

    args = parse_args(make_parser(), argv)
    try:
        images = collect_images(args.infer_img, args.infer_dir)
        output_dir = check_output_dir(args.output_dir)
    except InputError as error:
        raise ToolError(str(error))
    check_writable(output_dir)
    cfg = load_tool_config(args, exclude_args=('config', 'opt', 'infer_img', 'infer_dir',
                                               'output_dir'))
    model = build_model(cfg, args.config)

    from ppdet.utils.logger import setup_logger
    from ppdet_gcnet.analysis.visualize import visualize
    logger = setup_logger('visualize_context')
    dataset, make_reader = build_loader()
    dataset.set_images(images)
    try:
        outputs = visualize(model, make_reader(dataset), dataset.get_imid2path(), output_dir,
                            log=logger.info)
    except NoGCBlockError as error:
        raise ToolError(f"-c {args.config}: {error}")
    logger.info(f"{len(outputs)} image(s) visualised under {output_dir}")
    return outputs


if __name__ == '__main__':
    run_tool(main)
