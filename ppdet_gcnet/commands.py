"""`ppdet-gcnet SUBCOMMAND ...`: the project's tools under one command, with their own flags
(PaddleDetection's for train/eval/infer/export: `-c CONFIG`, `-o key=value`, ...).

Each subcommand runs `tools/<script>` exactly as `python tools/<script>` would, so the tools
stay ordinary scripts in a checkout; an installed package carries them as `ppdet_gcnet/tools/`.
Adding a tool is one line in COMMANDS.
"""
import os
import runpy
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# subcommand: (script in tools/, one-line summary)
COMMANDS = {
    'train': ('train.py', 'train a detector: -c CONFIG [--eval] [-r CKPT] [--use_vdl]'),
    'eval': ('eval.py', 'COCO bbox / segm AP: -c CONFIG -o weights=PATH'),
    'infer': ('infer.py', 'draw detections: -c CONFIG -o weights=PATH --infer_img IMG'),
    'export': ('export_model.py',
               'Paddle Inference model + infer_cfg.yml: -c CONFIG -o weights=PATH'),
    'download-weights': ('download_weights.py', 'fetch and verify model-zoo weights (--list)'),
    'convert-legacy-weights': ('convert_legacy_weights.py',
                               'legacy static-graph weights to .pdparams'),
    'convert-mmdet-weights': ('convert_mmdet_weights.py',
                              'mmdetection GCNet checkpoints to .pdparams'),
    'visualize-context': ('visualize_context.py', 'draw what every GC block attends to'),
    'make-shapes-dataset': ('make_shapes_dataset.py', 'write the bundled shapes dataset'),
}


def tools_dir():
    """`ppdet_gcnet/tools` in an installed package, `tools/` beside the package in a checkout."""
    installed = os.path.join(_PACKAGE_DIR, 'tools')
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(_PACKAGE_DIR), 'tools')


def usage():
    width = max(map(len, COMMANDS))
    lines = ['usage: ppdet-gcnet SUBCOMMAND [flags...]',
             '', 'GCNet for PaddleDetection. Subcommands (SUBCOMMAND --help for their flags):']
    lines += [f'  {name:<{width}}  {summary}' for name, (_, summary) in COMMANDS.items()]
    lines += ['', '-c takes a config file or a bundled config name, e.g. '
              'gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml']
    return '\n'.join(lines)


def run(name, argv):
    """Run subcommand `name` as `python tools/<script> argv...` would (its exit status too)."""
    script = os.path.join(tools_dir(), COMMANDS[name][0])
    sys.argv = [f'ppdet-gcnet {name}', *argv]
    sys.path.insert(0, os.path.dirname(script))  # what `python tools/x.py` puts first
    runpy.run_path(script, run_name='__main__')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: {argv[0]!r} is not a subcommand; choose from {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    run(argv[0], argv[1:])
    return 0


if __name__ == '__main__':
    sys.exit(main())
