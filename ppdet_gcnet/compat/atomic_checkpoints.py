"""Training checkpoints: written in place, so a kill mid-write leaves a truncated file.

Defect: `ppdet.utils.checkpoint.save_model` (PaddleDetection 2.6.0 and upstream develop, 2024),
which the `Checkpointer` callback calls for every `<epoch>`, `best_model` and `model_final`,
`paddle.save`s each file straight under its final name. A kill (OOM, preemption, Ctrl-C twice)
during that write leaves a truncated `.pdparams`/`.pdopt` under a checkpoint name, or new weights
next to the previous optimizer state; nothing records which checkpoints are whole.

Adds: the usual crash-safe write (temp name, fsync, rename) and a completion record per
checkpoint, see `ppdet_gcnet.checkpoints`; the record also keeps the random state, so a resumed
run draws what the uninterrupted run would.

Fix: `save_model` is replaced, in `ppdet.utils.checkpoint` and in `ppdet.engine.callbacks`
(which imported it by name), by a wrapper that runs the installed `save_model` into a staging
directory and commits its files; ranks other than 0 save nothing, as before.
"""
import contextlib
import os
import tempfile

from ._patching import installed, replace

NAME = 'atomic_checkpoints'


def _owners():
    from ppdet.engine import callbacks
    from ppdet.utils import checkpoint
    return [checkpoint, callbacks]


@contextlib.contextmanager
def _quiet(logger):
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def save_model(model, optimizer, save_dir, save_name, last_epoch, ema_model=None):
    """ppdet's `save_model` contract, committed crash-safely with a completion record."""
    import paddle
    from .. import checkpoints, rng_state
    from ppdet.utils import checkpoint
    ppdet_save = installed(checkpoint, 'save_model')
    if paddle.distributed.get_rank() != 0:
        return

    def write_files(staging):
        with _quiet(checkpoint.logger):  # it would name the staging directory
            ppdet_save(model, optimizer, staging, save_name, last_epoch, ema_model=ema_model)

    checkpoints.save_checkpoint(write_files, save_dir, save_name, last_epoch,
                                extra={'rng_state': rng_state.capture()})
    checkpoint.logger.info(f"Checkpoint {save_name} (epoch {last_epoch}) complete in {save_dir}")


def probe():
    """Run ppdet's `save_model` on a one-layer model, recording the paths `paddle.save` writes;
    True if any file is written straight under its final name in save_dir."""
    import paddle
    from ppdet.utils import checkpoint
    written = []
    real_save = paddle.save

    def record(obj, path, *args, **kwargs):
        written.append(os.path.abspath(path))
        return real_save(obj, path, *args, **kwargs)

    layer = paddle.nn.Linear(2, 2)
    optimizer = paddle.optimizer.SGD(parameters=layer.parameters())
    with tempfile.TemporaryDirectory() as save_dir:
        paddle.save = record
        try:
            with _quiet(checkpoint.logger):
                checkpoint.save_model(layer.state_dict(), optimizer, save_dir, 'probe', 1)
        finally:
            paddle.save = real_save
        final = os.path.join(os.path.abspath(save_dir), 'probe.')
    return any(path.startswith(final) for path in written)


def replaced_attributes():
    return [(owner, 'save_model') for owner in _owners()]


def apply():
    changed = False
    for owner in _owners():
        changed |= replace(owner, 'save_model', save_model, NAME)
    return changed
