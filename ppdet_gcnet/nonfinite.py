"""A NaN or Inf loss during training: stop with one line naming the iteration and the loss terms
(default), or skip that step (`--skip_nonfinite`).

ppdet's training loop steps the optimizer whatever the loss; after one NaN step every parameter
is NaN and every later checkpoint is useless. Stopping raises before `backward()`, so nothing of
that step reaches the parameters and the last checkpoint on disk is the last good one. Skipping
leaves parameters, optimizer state and batch-norm statistics as they were before the step (the
learning-rate schedule still advances: ppdet steps it unconditionally); it also skips a step
whose gradients are non-finite, which with data parallelism (gradients all-reduced) makes every
process skip the same steps.
"""
import math
import os

from . import checkpoints
from .cli import ToolError


class NonFiniteLoss(ToolError):
    """Training stopped at a NaN/Inf loss; the tool exits with status 3."""
    exit_status = 3


def _loss_terms(outputs):
    terms = {}
    for name, value in outputs.items():
        try:
            terms[name] = float(value)
        except (TypeError, ValueError):
            continue  # not a scalar loss term
    return terms


def _describe(terms):
    return ', '.join(f'{name}={value:.6g}' for name, value in terms.items())


def _batch_norm_buffers(model):
    """Running statistics, which the forward pass updates (Paddle keeps them as parameters)."""
    import paddle
    kinds = (paddle.nn.layer.norm._BatchNormBase, paddle.nn.BatchNorm)
    return [(layer, {name: getattr(layer, name).clone() for name in ('_mean', '_variance')})
            for layer in model.sublayers() if isinstance(layer, kinds)]


def guard(trainer, save_dir, skip=False, log=print):
    """Check every training forward of `trainer.model`; see the module docstring."""
    import paddle
    model, status = trainer.model, trainer.status
    pending = {'skip': False, 'norm': None}

    def last_checkpoint():
        found, _ = checkpoints.newest_complete(save_dir, hashes=False)
        if found is None:
            return f"no checkpoint in {save_dir} yet"
        name, record = found
        return (f"last checkpoint: {os.path.join(save_dir, name)} (epoch {record['epoch']}; "
                f"resume with -r auto)")

    def where():
        epoch, step = status.get('epoch_id', 0), status.get('step_id', 0)
        per_epoch = status.get('steps_per_epoch') or 0
        return (f"epoch {epoch}, iteration {step}"
                f"{f' of {per_epoch} (global iteration {epoch * per_epoch + step})' if per_epoch else ''}")

    def before_forward(layer, inputs):
        if skip and layer.training:
            pending['norm'] = _batch_norm_buffers(layer)

    def after_forward(layer, inputs, outputs):
        if not (layer.training and isinstance(outputs, dict) and 'loss' in outputs):
            return outputs
        terms = _loss_terms(outputs)
        bad = [name for name, value in terms.items() if not math.isfinite(value)]
        if not bad:
            return outputs
        if not skip:
            raise NonFiniteLoss(f"non-finite loss at {where()}: {_describe(terms)} (non-finite: "
                                f"{', '.join(bad)}); stopped before this step changed the "
                                f"model; {last_checkpoint()}")
        log(f"Skipping {where()}: non-finite loss ({_describe(terms)})")
        pending['skip'] = True
        return outputs

    step = trainer.optimizer.step

    def guarded_step(*args, **kwargs):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        finite = all(bool(paddle.isfinite(g).all()) for g in grads)
        if not finite and not pending['skip']:
            log(f"Skipping {where()}: non-finite gradients")
        if pending['skip'] or not finite:
            for layer, buffers in pending['norm'] or []:
                for name, value in buffers.items():
                    getattr(layer, name).set_value(value)
            pending['skip'] = False
            return None
        return step(*args, **kwargs)

    model.register_forward_post_hook(after_forward)
    if skip:
        model.register_forward_pre_hook(before_forward)
        trainer.optimizer.step = guarded_step
