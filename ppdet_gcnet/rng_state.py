"""The random state of a training run, made resumable.

Two consumers draw random numbers while ppdet trains:
- the data loader (its thread, or its worker processes) runs the transforms: `random` and
  `np.random` (RandomFlip, RandomResize); Paddle creates each epoch's loader iterator at the end
  of the previous epoch, so its draws overlap whatever the training loop does at that moment;
- the training loop: `paddle.randperm` in the RPN and RoI samplers (Paddle's CPU generator).

So a checkpoint cannot simply record "the" random state. Instead:
- `EpochSeededLoader` seeds `random` and `np.random` from (run seed, epoch) each time an epoch's
  iterator is created, and sets the batch sampler to that epoch (ppdet never calls the
  sampler's `set_epoch`, so a resumed run would otherwise shuffle as epoch 0 again);
- `capture()` records the run seed and Paddle's CPU generator at the checkpoint (the training
  loop draws nothing between a checkpoint and the next epoch's first step); `restore()` sets it.
"""
import base64
import io
import pickle
import random
import zlib

import numpy as np

_run_seed = None


class _GeneratorStateOnly(pickle.Unpickler):
    """Paddle's GeneratorState pickles through pybind11; nothing else may come out of it."""

    def find_class(self, module, name):
        if name == 'GeneratorState' and module.startswith('paddle.'):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"rng state: {module}.{name} is not a generator state")


def epoch_seed(run_seed, epoch):
    return zlib.crc32(f'{run_seed}:{epoch}'.encode()) & 0x7fffffff


class EpochSeededLoader:
    """Stands in for the DataLoader inside ppdet's TrainReader: each `iter()` is one epoch."""

    def __init__(self, dataloader, batch_sampler, run_seed, first_epoch):
        self._dataloader = dataloader
        self._batch_sampler = batch_sampler
        self._run_seed = run_seed
        self._next_epoch = first_epoch

    def __iter__(self):
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        if hasattr(self._batch_sampler, 'set_epoch'):
            self._batch_sampler.set_epoch(epoch)
        seed = epoch_seed(self._run_seed, epoch)
        random.seed(seed)
        np.random.seed(seed)
        return iter(self._dataloader)

    def __getattr__(self, name):
        return getattr(self._dataloader, name)


def seed_epochs(trainer, run_seed):
    """Make every epoch's data draws a function of (run_seed, epoch), from trainer.start_epoch
    on. Replaces the iterator ppdet's TrainReader already started (it drew with no such seed)."""
    global _run_seed
    _run_seed = int(run_seed)
    reader = trainer.loader
    started = getattr(reader, 'loader', None)
    if started is not None and hasattr(started, '_try_shutdown_all'):
        started._try_shutdown_all()
    reader.dataloader = EpochSeededLoader(reader.dataloader, reader._batch_sampler, _run_seed,
                                          trainer.start_epoch)
    reader.loader = iter(reader.dataloader)


def new_run_seed():
    return random.SystemRandom().randrange(1 << 31)


def capture():
    import paddle
    state = pickle.dumps(paddle.get_rng_state('cpu'))
    return {'run_seed': _run_seed, 'paddle_cpu': base64.b64encode(state).decode('ascii')}


def restore(state):
    """Set Paddle's CPU generator as recorded; returns the run seed recorded with it."""
    import paddle
    raw = base64.b64decode(state['paddle_cpu'])
    paddle.set_rng_state(_GeneratorStateOnly(io.BytesIO(raw)).load(), 'cpu')
    return state.get('run_seed')
