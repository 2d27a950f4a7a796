"""What tools/train.py, eval.py, infer.py and export_model.py share: PaddleDetection's command
line (`-c`, `-o key=value`), config loading with one-line errors, device choice, weights paths.
"""
import difflib
import glob
import os
import re
import sys

import yaml


class ToolError(Exception):
    """A bad command-line or config value; tools print it as one line and exit with status 2."""


class _OverrideLoader(yaml.SafeLoader):
    """YAML for `-o` values, reading `1e-3` and `5e4` as numbers, as a user (and YAML 1.2) does;
    PyYAML's YAML 1.1 wants a dot and a signed exponent. Quoted values stay strings."""


_OverrideLoader.add_implicit_resolver(
    'tag:yaml.org,2002:float', re.compile(r'^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$'),
    list('-+0123456789.'))


def _parse_overrides(opts):
    """`-o a.b=c x=y` -> nested dict; values parsed as YAML, like PaddleDetection."""
    merged = {}
    for opt in opts or []:
        if '=' not in opt:
            raise ToolError(f"-o {opt!r}: expected key=value (e.g. -o use_gpu=false)")
        key, text = opt.strip().split('=', 1)
        if not key or any(not part for part in key.split('.')):
            raise ToolError(f"-o {opt!r}: empty key")
        try:
            value = yaml.load(text, Loader=_OverrideLoader)
        except yaml.YAMLError as error:
            raise ToolError(f"-o {opt!r}: value is not valid YAML ({error.problem})")
        node = merged
        *parents, leaf = key.split('.')
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ToolError(f"-o {opt!r}: {part} was already given a plain value")
        node[leaf] = value
    return merged


def build_parser(description):
    from ppdet.utils.cli import ArgsParser
    parser = ArgsParser()
    parser.description = description
    return parser


def parse_args(parser, argv=None):
    """Like ppdet's ArgsParser.parse_args, with ToolError instead of asserts."""
    args = super(type(parser), parser).parse_args(argv)
    if not args.config:
        raise ToolError("-c/--config: a config file is required (e.g. -c configs/gcnet/"
                        "mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml)")
    args.opt = _parse_overrides(args.opt)
    return args


def config_path(value):
    """`-c` value -> config file: a path, or the name of a bundled config
    (`gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml`)."""
    from .config_files import bundled_model_configs, find_config
    path = find_config(value)
    if path is None:
        names = bundled_model_configs()
        closest = difflib.get_close_matches(value.replace('configs/', '', 1), names, n=3,
                                            cutoff=0.0)
        raise ToolError(f"-c {value}: no such config file, nor one of the {len(names)} bundled "
                        f"configs (closest: {', '.join(closest) or 'none'})")
    return path


def require_visualdl():
    """--use_vdl: VisualDL must import (ppdet's writer would fail mid-run with a traceback)."""
    try:
        import visualdl  # noqa: F401
    except ImportError as error:
        raise ToolError(f"--use_vdl needs VisualDL ({error}): pip install visualdl "
                        f"(or pip install 'ppdet-gcnet[vdl]')")


def _set_object_fields(cfg, overrides):
    """`-o TrainDataset.dataset_dir=X`: ppdet's merge would replace the whole `!COCODataSet`
    object by a one-key dict; set the field on the object instead. Returns the rest."""
    rest = {}
    for key, value in overrides.items():
        target = cfg.get(key)
        if not (isinstance(value, dict) and hasattr(target, '__dict__')
                and not isinstance(target, dict)):
            rest[key] = value
            continue
        for field, field_value in value.items():
            if not hasattr(target, field):
                raise ToolError(f"-o {key}.{field}: {type(target).__name__} has no field "
                                f"{field!r}")
            setattr(target, field, field_value)
    return rest


def load_tool_config(args, exclude_args=('config', 'opt', 'slim_config')):
    """Load `-c` (a path or a bundled config name) with its _BASE_ files, merge CLI flags and
    `-o` overrides, validate GC keys, pick the device. Returns ppdet's global config."""
    import paddle
    import ppdet_gcnet  # noqa: F401  (registers GCResNet, applies compat fixes)
    from ppdet.core.workspace import load_config, merge_config
    from ppdet.utils.cli import merge_args
    from .config_check import check_config

    args.config = config_path(args.config)
    if getattr(args, 'use_vdl', False):
        require_visualdl()
    try:
        cfg = load_config(args.config)
    except yaml.YAMLError as error:
        raise ToolError(f"-c {args.config}: not valid YAML ({str(error).splitlines()[0]})")
    except OSError as error:  # a _BASE_ file that is not there or not readable
        raise ToolError(f"-c {args.config}: {error.filename or ''}: {error.strerror} "
                        f"(in its _BASE_ chain)")
    merge_args(cfg, args, exclude_args=list(exclude_args))
    merge_config(_set_object_fields(cfg, args.opt))
    check_config(cfg)
    use_gpu = bool(cfg.get('use_gpu', False))
    if use_gpu and not paddle.is_compiled_with_cuda():
        raise ToolError("use_gpu: true, but this Paddle has no GPU support; "
                        "add -o use_gpu=false (or install paddlepaddle-gpu)")
    paddle.set_device('gpu' if use_gpu else 'cpu')
    return cfg


def resolve_config_weights(cfg, keys=('weights', 'pretrain_weights'), config=None):
    """Turn manifest names / URLs in `weights` and `pretrain_weights` into local files, so
    ppdet's own loader never downloads anything itself; with the tool's `config`, a local
    legacy folder or archive is converted for that config's model."""
    from .weights import resolve_weights
    for key in keys:
        if cfg.get(key):
            cfg[key] = resolve_weights(cfg[key], config=config)


def weights_file_exists(path):
    """ppdet names checkpoints without their `.pdparams` suffix; accept either form."""
    return os.path.isfile(path) or os.path.isfile(str(path) + '.pdparams')


def require_weights(cfg, key='weights'):
    value = cfg.get(key)
    if not value:
        raise ToolError(f"{key}: not set; give -o {key}=<path/to/model_final>")
    if not weights_file_exists(value):
        raise ToolError(f"{key}: {value}: no such file (nor {value}.pdparams)")
    return value


# What ppdet's ImageFolder accepts; anything else it would silently drop.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def load_weights(model, path, key='weights'):
    """The one way tools load weights into a model: ppdet's name matching, with one-line
    errors for damaged files and shapes that do not fit (see weights.state_file)."""
    from .weights.state_file import load_weights as load
    return load(model, path, key)


def check_output_dir(path, flag='--output_dir'):
    """Refuse an output directory that cannot be written, before any work is done: the path
    (or, if it does not exist yet, its nearest existing parent) must be a directory where a
    probe file can be created. Nothing is left behind (no empty directory either). Catches what
    permission bits do not (a file in the way, a read-only file system) and works for root."""
    import tempfile
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ToolError(f"{flag} {path}: cannot write there ({existing} is a file)")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix='.write-test-'):
            pass
    except OSError as error:
        raise ToolError(f"{flag} {path}: cannot write there ({error.strerror or error})")
    return path


def collect_images(infer_img=None, infer_dir=None):
    """--infer_img wins over --infer_dir, as in PaddleDetection; a dir yields its images sorted."""
    if infer_img:
        if not os.path.isfile(infer_img):
            raise ToolError(f"--infer_img {infer_img}: no such file")
        if not infer_img.lower().endswith(IMAGE_EXTENSIONS):
            raise ToolError(f"--infer_img {infer_img}: not a supported image type "
                            f"({', '.join(IMAGE_EXTENSIONS)})")
        return [os.path.abspath(infer_img)]
    if not infer_dir:
        raise ToolError("give --infer_img IMAGE or --infer_dir DIR")
    if not os.path.isdir(infer_dir):
        raise ToolError(f"--infer_dir {infer_dir}: no such directory")
    images = sorted(p for p in glob.glob(os.path.join(infer_dir, '*'))
                    if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise ToolError(f"--infer_dir {infer_dir}: no images "
                        f"({', '.join(IMAGE_EXTENSIONS)}) in it")
    return [os.path.abspath(p) for p in images]


def run_tool(main):
    """Run a tool's main(); config and input errors end as one line on stderr, status 2."""
    from .deploy.onnx_export import ExportError
    from .modeling import GCConfigError
    from .weights import WeightsError
    try:
        return main()
    except (ToolError, GCConfigError, WeightsError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(getattr(error, 'exit_status', 2))
