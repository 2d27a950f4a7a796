"""--use_vdl: training logs its losses and eval AP as VisualDL scalars (read back with VisualDL's
own reader and compared with the printed log); without VisualDL the tools say in one line what to
install, before doing any work."""
import glob
import os
import re

import pytest

from tool_runner import run_tool, tiny_config

pytestmark = pytest.mark.ppdet

# Runs a tool as `python tools/x.py` would, with VisualDL made unimportable.
WITHOUT_VISUALDL = ("import os, runpy, sys; sys.modules['visualdl'] = None; "
                    "sys.argv = sys.argv[1:]; sys.path.insert(0, os.path.dirname(sys.argv[0])); "
                    "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope='module')
def trained(tmp_path_factory, shapes_dataset):
    work = tmp_path_factory.mktemp('vdl')
    config = tiny_config(str(work), shapes_dataset)
    log_dir = work / 'vdl'
    result = run_tool('tools/train.py', '-c', config, '--seed', '0', '--eval', '--use_vdl',
                      '--vdl_log_dir', str(log_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return config, log_dir, result.stdout + result.stderr


def _printed_losses(log):
    """{loss name: [value per step]} from ppdet's `Epoch: [0] [i/n] ... loss_x: v` lines."""
    losses = {}
    for line in log.splitlines():
        if 'Epoch: [' in line:
            for name, value in re.findall(r'\b(loss\w*): ([0-9.]+)', line):
                losses.setdefault(name, []).append(float(value))
    return losses


def test_losses_and_ap_are_written_as_scalars_and_read_back(trained):
    from visualdl import LogReader
    _, log_dir, log = trained
    (record,) = glob.glob(str(log_dir / 'vdlrecords.*'))
    reader = LogReader(file_path=record)
    scalars = {tag: [(point.id, point.value) for point in reader.get_data('scalar', tag)]
               for tag in reader.get_tags()['scalar']}

    printed = _printed_losses(log)
    assert set(printed) >= {'loss', 'loss_mask', 'loss_rpn_cls', 'loss_bbox_cls'}
    for name, values in printed.items():
        steps = [step for step, _ in scalars[name]]
        assert steps == list(range(len(values)))
        assert [value for _, value in scalars[name]] == pytest.approx(values, abs=2e-6)

    # one evaluation after the epoch: COCO AP as printed, bbox first then segm
    printed_ap = [float(v) for v in re.findall(
        r'Average Precision  \(AP\) @\[ IoU=0\.50:0\.95 \| area=   all \| maxDets=100 \] = '
        r'([-0-9.]+)', log)]
    assert len(printed_ap) == 2
    assert [value for _, value in scalars['bbox-mAP']] == pytest.approx([printed_ap[0]], abs=6e-4)
    assert [value for _, value in scalars['mask-mAP']] == pytest.approx([printed_ap[1]], abs=6e-4)


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/infer.py'])
def test_without_visualdl_use_vdl_is_a_one_line_error(tool, tmp_path, shapes_dataset):
    config = tiny_config(str(tmp_path), shapes_dataset)
    image = os.path.join(shapes_dataset, 'val', 'val_00000.jpg')
    extra = ['-o', 'weights=none', '--infer_img', image] if 'infer' in tool else []
    result = run_tool(tool, '-c', config, '--use_vdl', '--vdl_log_dir', str(tmp_path / 'vdl'),
                      *extra, python_args=('-c', WITHOUT_VISUALDL))
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert errors == ["error: --use_vdl needs VisualDL (import of visualdl halted; None in "
                      "sys.modules): pip install visualdl (or pip install 'ppdet-gcnet[vdl]')"]
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'vdl').exists() and not (tmp_path / 'output').exists()
