"""Show what every GC block of a detector attends to, and how much each block contributes.

    python tools/visualize_context.py -c CONFIG [-o weights=PATH ...] \
        (--infer_img IMAGE | --infer_dir DIR) --output_dir OUT

Per image, OUT/<image name>/ gets one heat-map overlay per GC block (<block>.png, the image's
size), summary.png (stages as rows, blocks as columns), report.json and report.png (attention
entropy relative to uniform, mass on the top 1 % of positions, fusion-term magnitude).
Images go through the config's TestReader, as in ppdet's inference; only the backbone runs.
`-o weights=null` draws the maps of an untrained (randomly initialised) model.
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import paddle  # noqa: E402

import ppdet_gcnet  # noqa: E402,F401  (registers GCResNet, applies compat fixes)
from ppdet.core.workspace import create, load_config, merge_config  # noqa: E402
from ppdet.utils.checkpoint import load_weight  # noqa: E402
from ppdet.utils.cli import ArgsParser  # noqa: E402
from ppdet.utils.logger import setup_logger  # noqa: E402

from ppdet_gcnet.analysis.context_capture import NoGCBlockError  # noqa: E402
from ppdet_gcnet.analysis.context_inputs import (InputError, check_output_dir,  # noqa: E402
                                                 collect_images)
from ppdet_gcnet.analysis.visualize import visualize  # noqa: E402
from ppdet_gcnet.modeling.gc_block import GCConfigError  # noqa: E402
from ppdet_gcnet.weights import resolve_weights  # noqa: E402

logger = setup_logger('visualize_context')


def parse_args(argv=None):
    parser = ArgsParser()
    parser.add_argument('--infer_img', default=None, help='one image to visualise')
    parser.add_argument('--infer_dir', default=None,
                        help='a directory whose images (jpg, jpeg, png, bmp) are visualised')
    parser.add_argument('--output_dir', default='output/context',
                        help='where the per-image folders are written')
    return parser.parse_args(argv)


def weights_file(value):
    """The .pdparams file a `weights` value names (ppdet allows leaving the suffix off)."""
    path = resolve_weights(value)
    return path if path.endswith('.pdparams') else path + '.pdparams'


def build_model(cfg):
    model = create(cfg.architecture)
    if cfg.get('weights') is None:
        logger.warning('weights: null, so these are the maps of a randomly initialised model')
        return model
    path = weights_file(cfg.weights)
    if not os.path.isfile(path):
        raise InputError(f"weights: {path!r} does not exist; train the model first or pass "
                         f"-o weights=PATH (or -o weights=null for random weights)")
    load_weight(model, path[:-len('.pdparams')])
    return model


def build_loader(images):
    """ppdet's own test pipeline: the config's TestDataset (an ImageFolder) and TestReader."""
    dataset = create('TestDataset')()
    dataset.set_images(images)
    return create('TestReader')(dataset, 0), dataset.get_imid2path()


def run(args):
    images = collect_images(args.infer_img, args.infer_dir)
    if args.infer_img and args.infer_dir:
        logger.warning('--infer_img given, so --infer_dir is ignored (as in ppdet tools/infer.py)')
    output_dir = check_output_dir(args.output_dir)
    if not os.path.isfile(args.config):
        raise InputError(f"-c: config {args.config!r} does not exist")
    cfg = load_config(args.config)
    merge_config(args.opt)
    use_gpu = cfg.get('use_gpu', False) and paddle.is_compiled_with_cuda()
    paddle.set_device('gpu' if use_gpu else 'cpu')
    model = build_model(cfg)
    loader, imid2path = build_loader(images)
    outputs = visualize(model, loader, imid2path, output_dir, log=logger.info)
    logger.info(f"{len(outputs)} image(s) visualised under {output_dir}")
    return outputs


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (InputError, GCConfigError, NoGCBlockError) as error:
        sys.stderr.write(f"visualize_context: error: {error}\n")
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
