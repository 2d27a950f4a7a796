"""`tools/train.py -r auto|PATH`: which checkpoint to resume from, and restoring the run state
saved with it (see `checkpoints` for what makes a checkpoint complete)."""
import os

from . import checkpoints
from .cli import ToolError


def run_save_dir(cfg):
    """Where ppdet's Checkpointer writes this run's checkpoints."""
    return os.path.join(cfg.get('save_dir', 'output'), cfg.filename)


def _strip(path):
    path = str(path)
    return path[:-len('.pdparams')] if path.endswith('.pdparams') else path


def choose(resume, save_dir, log):
    """The checkpoint path (without suffix) to resume from, or None to start afresh.

    `auto`: the newest complete checkpoint in save_dir. A path: that checkpoint, refused if
    this trainer's records show it incomplete or damaged (a checkpoint without a record in a
    directory with none, e.g. from plain PaddleDetection, is taken as it is)."""
    if resume == 'auto':
        removed = checkpoints.remove_stale_staging(save_dir)
        if removed:
            log(f"Removed {len(removed)} partial checkpoint write(s) in {save_dir}: "
                f"{', '.join(sorted(removed))}")
        found, skipped = checkpoints.newest_complete(save_dir)
        for reason in skipped:
            log(f"Skipping {reason}")
        if found is None:
            log(f"-r auto: no complete checkpoint in {save_dir}; training from the start")
            return None
        name, record = found
        log(f"-r auto: resuming from {os.path.join(save_dir, name)} (epoch {record['epoch']} "
            f"done, newest complete checkpoint in {save_dir})")
        return os.path.join(save_dir, name)
    path = _strip(resume)
    if not os.path.isfile(path + '.pdparams'):
        raise ToolError(f"-r/--resume {resume}: no such checkpoint (nor {path}.pdparams)")
    folder, name = os.path.split(path)
    if os.path.isfile(checkpoints.record_path(folder, name)) or checkpoints.recorded_names(folder):
        try:
            checkpoints.verify(folder, name)
        except checkpoints.CheckpointError as error:
            raise ToolError(f"-r/--resume: {error}")
    return path


def restore_run_state(trainer, path, seed):
    """After `trainer.resume_weights(path)`: Paddle's generator as saved, and every epoch's data
    draws seeded from the run seed (the saved one when resuming). Returns the run seed."""
    from . import rng_state
    record = None
    if path:
        folder, name = os.path.split(path)
        if os.path.isfile(checkpoints.record_path(folder, name)):
            record = checkpoints.read_record(folder, name)
    saved = rng_state.restore(record['rng_state']) if record and 'rng_state' in record else None
    run_seed = saved if saved is not None else (seed if seed is not None
                                                else rng_state.new_run_seed())
    rng_state.seed_epochs(trainer, run_seed)
    return run_seed
