"""Reading a `.pdparams` file into a model with one-line errors (WeightsError) for what users
get wrong: a truncated or non-Paddle file, weights of another model (shapes that do not fit).

ppdet's loaders raise a bare `ValueError`/`UnpicklingError` from `paddle.load` on a damaged file,
and `load_pretrain_weight` silently skips parameters whose shapes differ, so evaluating the
wrong weights "works" and reports an AP near zero.
"""
import os

from .resolve import WeightsError

SHOWN = 3  # mismatched parameters named in the error line


def weights_file(path):
    """`x`, `x.pdparams` -> `x.pdparams` (ppdet names checkpoints without the suffix)."""
    path = str(path)
    return path if path.endswith('.pdparams') else path + '.pdparams'


def read_state_dict(path, key='weights'):
    """The {name: array} dict in `path` (with or without `.pdparams`), or WeightsError."""
    import paddle
    file = weights_file(path)
    if not os.path.isfile(file):
        raise WeightsError(f"{key}: {file}: no such file")
    if os.path.getsize(file) == 0:
        raise WeightsError(f"{key}: {file}: empty file")
    try:
        state = paddle.load(file)
    except Exception as error:  # paddle.load reports truncation as ValueError, EOFError, ...
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise WeightsError(f"{key}: {file}: not a readable Paddle weights file (truncated or "
                           f"another format: {reason})")
    if not isinstance(state, dict) or not all(hasattr(v, 'shape') for v in state.values()):
        raise WeightsError(f"{key}: {file}: not a weights file (holds a {type(state).__name__}, "
                           f"not name -> tensor)")
    return state


def check_fit(model_state, state, file, key='weights'):
    """WeightsError naming the first parameters whose shapes differ, or if nothing matches."""
    mismatched = [(name, list(state[name].shape), list(value.shape))
                  for name, value in model_state.items()
                  if name in state and list(state[name].shape) != list(value.shape)]
    if mismatched:
        shown = '; '.join(f"{name} {got} in the file vs {want} in the model"
                          for name, got, want in mismatched[:SHOWN])
        more = f" (and {len(mismatched) - SHOWN} more)" if len(mismatched) > SHOWN else ''
        raise WeightsError(f"{key}: {file}: {len(mismatched)} parameter(s) do not fit the "
                           f"model: {shown}{more}")


def load_weights(model, path, key='weights'):
    """Load `path` into `model` by ppdet's name matching, refusing damaged or misfit files."""
    import numpy as np
    import paddle
    from ppdet.utils.checkpoint import match_state_dict
    file = weights_file(path)
    state = read_state_dict(file, key)
    model_state = model.state_dict()
    check_fit(model_state, state, file, key)
    matched = match_state_dict(model_state, state)
    if not matched:
        raise WeightsError(f"{key}: {file}: none of its {len(state)} tensors is a parameter of "
                           f"this model")
    for name, value in matched.items():
        if isinstance(value, np.ndarray):
            value = paddle.to_tensor(value)
        matched[name] = value.astype(model_state[name].dtype)
    model.set_dict(matched)
    return matched


def check_weights_fit(model, path, key):
    """For a loader that is strict by itself (ppdet's resume): the file reads, every parameter
    of the model is in it, and every shape fits; else WeightsError."""
    file = weights_file(path)
    state = read_state_dict(file, key)
    model_state = model.state_dict()
    check_fit(model_state, state, file, key)
    missing = [name for name in model_state if name not in state]
    if missing:
        shown = ', '.join(missing[:SHOWN])
        more = f" (and {len(missing) - SHOWN} more)" if len(missing) > SHOWN else ''
        raise WeightsError(f"{key}: {file}: {len(missing)} of the model's {len(model_state)} "
                           f"parameters are not in it: {shown}{more}")
