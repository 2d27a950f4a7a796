"""Training under faults, through tools/train.py as a user runs it: killed with SIGKILL at several
points (inside checkpoint writes and between them) it leaves no broken checkpoint, and `-r auto`
then finishes with exactly the parameters of the uninterrupted run (CPU, same seed); a damaged
checkpoint is skipped; a NaN loss stops training in one line (or is skipped on request)."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from ppdet_gcnet import checkpoints
from tool_runner import ROOT, run_tool, tiny_config

EPOCHS = 3  # checkpoints 0, 1 and model_final
RUN = 'tiny_gc_mask_rcnn'  # the tiny config's name: ppdet's run directory


def _train_args(config, save_dir, *extra):
    return ['-c', config, '-o', f'epoch={EPOCHS}', f'save_dir={save_dir}', '--seed', '0',
            *extra]


@pytest.fixture(scope='module')
def setup(tmp_path_factory, shapes_dataset):
    work = tmp_path_factory.mktemp('resume')
    config = tiny_config(str(work), shapes_dataset)
    result = run_tool('tools/train.py', *_train_args(config, work / 'reference'))
    assert result.returncode == 0, result.stderr[-3000:]
    reference = paddle.load(str(work / 'reference' / RUN / 'model_final.pdparams'))
    return config, reference, work / 'reference' / RUN


def _start(config, save_dir, log, env=None):
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'tools/train.py'),
                             *_train_args(config, save_dir)], cwd=ROOT, env=full_env,
                            stdout=log, stderr=subprocess.STDOUT)


def _wait_for(process, ready, what, timeout=300):
    deadline = time.time() + timeout
    while not ready():
        assert process.poll() is None, f"trainer exited ({process.returncode}) before {what}"
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


def _assert_no_broken_checkpoint(run_dir):
    """Every file under a checkpoint name loads, and every recorded checkpoint verifies."""
    names = [f for f in os.listdir(run_dir) if f.endswith(('.pdparams', '.pdopt'))]
    for name in names:
        paddle.load(os.path.join(run_dir, name))  # raises on a truncated/partial file
    for name in checkpoints.recorded_names(run_dir):
        checkpoints.verify(run_dir, name)
    return names


# (where the kill lands, env for the trainer or a log line to wait for, checkpoint resumed from)
KILL_POINTS = [
    ('first epoch, no checkpoint yet', None, 'Epoch: [0] [0/2]', None),
    ('checkpoint 0 staged, nothing renamed', 'staged:0', None, None),
    ('checkpoint 1 half renamed (.pdopt in place)', 'committing:1', None, '0'),
    ('checkpoint 1 renamed, record not written', 'recording:1', None, '0'),
    ('second epoch, after checkpoint 0', None, 'Epoch: [1] [0/2]', '0'),
    ('model_final staged', 'staged:model_final', None, '1'),
]


@pytest.mark.parametrize('where,stall,log_line,expected', KILL_POINTS,
                         ids=[p[0] for p in KILL_POINTS])
def test_sigkill_then_resume_auto_matches_uninterrupted(setup, tmp_path, where, stall, log_line,
                                                        expected):
    config, reference, _ = setup
    save_dir, mark, log_path = tmp_path / 'out', tmp_path / 'stalled', tmp_path / 'killed.log'
    env = ({checkpoints.FAULT_ENV: stall, checkpoints.FAULT_MARK_ENV: str(mark)}
           if stall else None)
    with open(log_path, 'w') as log:
        process = _start(config, save_dir, log, env)
        try:
            if stall:
                _wait_for(process, mark.exists, f'stall at {stall}')
            else:
                _wait_for(process, lambda: log_line in log_path.read_text(), repr(log_line))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    run_dir = save_dir / RUN
    if run_dir.exists():
        _assert_no_broken_checkpoint(run_dir)

    result = run_tool('tools/train.py', *_train_args(config, save_dir, '-r', 'auto'))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    if expected is None:
        assert '-r auto: no complete checkpoint' in log
    else:
        assert f'-r auto: resuming from {run_dir / expected} ' in log
    assert not [f for f in os.listdir(run_dir) if checkpoints.STAGING_MARK in f]
    assert sorted(checkpoints.recorded_names(run_dir)) == ['0', '1', 'model_final']
    _assert_no_broken_checkpoint(run_dir)
    resumed = paddle.load(str(run_dir / 'model_final.pdparams'))
    assert resumed.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(np.asarray(resumed[name]), np.asarray(reference[name]),
                                      err_msg=name)


def test_damaged_checkpoint_is_skipped_and_named(setup, tmp_path):
    """A byte flipped inside the newest checkpoint (same size): -r auto says so and takes the
    one before; -r with that path refuses it in one line."""
    config, reference, _ = setup
    save_dir = tmp_path / 'out'
    result = run_tool('tools/train.py', *_train_args(config, save_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = save_dir / RUN
    damaged = run_dir / '1.pdparams'
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (run_dir / 'model_final.ckpt.json').unlink()  # as if killed before its record

    explicit = run_tool('tools/train.py', *_train_args(config, save_dir, '-r', str(run_dir / '1')))
    assert explicit.returncode == 2
    assert f"error: -r/--resume: {damaged}: content differs from its record" in explicit.stderr
    assert 'Traceback' not in explicit.stderr

    result = run_tool('tools/train.py', *_train_args(config, save_dir, '-r', 'auto'))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert f'Skipping {damaged}: content differs from its record' in log
    assert f'-r auto: resuming from {run_dir / "0"} ' in log
    resumed = paddle.load(str(run_dir / 'model_final.pdparams'))
    for name in reference:
        np.testing.assert_array_equal(np.asarray(resumed[name]), np.asarray(reference[name]),
                                      err_msg=name)


def _diverging_run(setup, tmp_path, *extra):
    """Resume the reference's checkpoint 0 with a learning rate of 1e30: epoch 1 runs (and is
    saved as checkpoint 1); its last step blows the weights up, so epoch 2's first loss is NaN."""
    config, _, reference_dir = setup
    run_dir = tmp_path / 'out' / RUN
    run_dir.mkdir(parents=True)
    for suffix in ('.pdparams', '.pdopt', '.ckpt.json'):
        shutil.copy(reference_dir / f'0{suffix}', run_dir)
    result = run_tool('tools/train.py', '-c', config, '-o', f'epoch={EPOCHS}',
                      f'save_dir={tmp_path / "out"}', 'LearningRate.base_lr=1.0e+30', '-r', 'auto',
                      *extra)
    return run_dir, result


def test_nan_loss_stops_in_one_line_and_keeps_the_checkpoints(setup, tmp_path):
    run_dir, result = _diverging_run(setup, tmp_path)
    assert result.returncode == 3, result.stderr[-3000:]
    errors = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
    assert len(errors) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert errors[0].startswith('error: non-finite loss at epoch 2, iteration 0 of 2 '
                                '(global iteration 4): loss_mask=nan'), errors[0]
    assert 'loss=nan' in errors[0] and f'last checkpoint: {run_dir / "1"} (epoch 2' in errors[0]
    assert sorted(checkpoints.recorded_names(run_dir)) == ['0', '1']  # no model_final
    _assert_no_broken_checkpoint(run_dir)


def test_skip_nonfinite_skips_every_nan_step(setup, tmp_path):
    run_dir, result = _diverging_run(setup, tmp_path, '--skip_nonfinite')
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'Skipping epoch 2, iteration 0 of 2 (global iteration 4): non-finite loss' in log
    assert 'Skipping epoch 2, iteration 1 of 2 (global iteration 5): non-finite loss' in log
    # every step of epoch 2 was skipped: parameters and batch-norm statistics are checkpoint 1's
    before = paddle.load(str(run_dir / '1.pdparams'))
    after = paddle.load(str(run_dir / 'model_final.pdparams'))
    for name in before:
        np.testing.assert_array_equal(np.asarray(after[name]), np.asarray(before[name]),
                                      err_msg=name)
