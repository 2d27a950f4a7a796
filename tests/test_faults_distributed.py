"""A 2-process data-parallel CPU run (paddle.distributed.launch): SIGKILL one worker after the
first checkpoint; the whole job exits non-zero, no process left behind (no hang); `-r auto`
then resumes it from the newest complete checkpoint and finishes."""
import os
import signal
import subprocess
import sys
import time

from ppdet_gcnet import checkpoints
from tool_runner import ROOT, tiny_config

RUN = 'tiny_gc_mask_rcnn'
HANG = 600  # seconds: a job still running after this is hung (normally it ends in seconds)


def _launch(config, save_dir, log_dir, *extra):
    command = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', '2',
               '--log_dir', str(log_dir), os.path.join(ROOT, 'tools/train.py'), '-c', config,
               '-o', 'epoch=3', 'TrainReader.batch_size=1', f'save_dir={save_dir}',
               '--seed', '0', *extra]
    return subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _workers(launcher_pid):
    """{rank: pid} of the launcher's worker processes (PADDLE_TRAINER_ID in their environment)."""
    workers = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            if ppid != launcher_pid:
                continue
            with open(f'/proc/{pid}/environ', 'rb') as f:
                env = dict(item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item)
        except (OSError, ValueError, IndexError):
            continue
        if b'PADDLE_TRAINER_ID' in env:
            workers[int(env[b'PADDLE_TRAINER_ID'])] = int(pid)
    return workers


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def test_killing_one_worker_ends_the_job_and_auto_resume_finishes(tmp_path, shapes_dataset):
    config = tiny_config(str(tmp_path), shapes_dataset)
    save_dir = tmp_path / 'out'
    run_dir = save_dir / RUN
    job = _launch(config, save_dir, tmp_path / 'logs1')
    try:
        deadline = time.time() + HANG
        while not (run_dir / ('0' + checkpoints.RECORD_SUFFIX)).exists():
            assert job.poll() is None, job.stdout.read()[-3000:]
            assert time.time() < deadline, 'no checkpoint 0'
            time.sleep(0.2)
        workers = _workers(job.pid)
        assert sorted(workers) == [0, 1], workers
        os.kill(workers[1], signal.SIGKILL)
        output, _ = job.communicate(timeout=HANG)  # a hang fails here
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode != 0, output[-3000:]
    assert not _alive(workers[0]), 'rank 0 outlived the job'

    job = _launch(config, save_dir, tmp_path / 'logs2', '-r', 'auto')
    try:
        output, _ = job.communicate(timeout=HANG)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    logs = ''.join(p.read_text() for p in (tmp_path / 'logs2').glob('workerlog.*'))
    assert job.returncode == 0, (output + logs)[-4000:]
    assert f'-r auto: resuming from {run_dir}' in logs
    assert 'Epoch: [2]' in logs
    for name in checkpoints.recorded_names(run_dir):
        checkpoints.verify(str(run_dir), name)
    assert 'model_final' in checkpoints.recorded_names(run_dir)
