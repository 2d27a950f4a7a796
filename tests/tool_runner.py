"""Running the project's tools as a user would: in a subprocess, from the repository root."""
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
QUICKSTART_CONFIG = os.path.join(  # the bundled default, for error tests
    ROOT, 'configs/gcnet/shapes/mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes.yml')


def run_tool(tool, *args, timeout=600, env=None, python_args=()):
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    command = [sys.executable, *python_args]
    command += [tool] if tool.startswith('-') else [os.path.join(ROOT, tool)]
    return subprocess.run(command + list(args), cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def tiny_config(tmp_dir, dataset_root, name='tiny_gc_mask_rcnn'):
    """The shared tiny GC Mask R-CNN config on `dataset_root`, checkpoints under tmp_dir/output."""
    from tiny_config import write_tiny_config
    return write_tiny_config(ROOT, dataset_root, tmp_dir, name=name,
                             save_dir=os.path.join(tmp_dir, 'output'))


def assert_one_line_error(run, *fragments):
    """A deploy tool refused: exit status 2, no traceback, its last line names every fragment."""
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert 'Traceback' not in run.stderr and lines[-1].startswith('error: ')
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
