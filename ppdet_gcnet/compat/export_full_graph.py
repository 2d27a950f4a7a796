"""Export: `Trainer` traces the model with `paddle.jit.to_static` defaults, which Paddle 3 changed.

Defect: `ppdet.engine.trainer.Trainer._get_infer_cfg_and_input_spec` (PaddleDetection 2.6),
which `Trainer.export` calls, converts the model with `paddle.jit.to_static(model, input_spec)`
and then reads `static_model.forward.main_program` to prune unused inputs. Paddle 3 made
`full_graph=False` (SOT, bytecode-level tracing) the default, and a SOT-converted function has
no `main_program`: export raises "Can't call main_program when full_graph=False".

Restores: upstream PaddleDetection develop, adapted to Paddle 3 in 2024 (the PIR export work
around PRs #9026 and #9163), passes `full_graph=True`, i.e. the AST dy2static conversion Paddle
2.x always used, so export again produces a whole static program for `paddle.jit.save`.

Fix: `Trainer._get_infer_cfg_and_input_spec` is wrapped so that, for the duration of the call,
`paddle.jit.to_static` defaults to `full_graph=True` (an explicit argument still wins). The
wrapped method is ppdet's own; only the default it traces with changes.
"""
import contextlib
import functools
import inspect

from ._patching import original, replace

NAME = 'export_full_graph'
METHOD = '_get_infer_cfg_and_input_spec'


def _trainer_class():
    from ppdet.engine.trainer import Trainer
    return Trainer


@contextlib.contextmanager
def full_graph_by_default():
    """Within the block, `paddle.jit.to_static(...)` means `to_static(..., full_graph=True)`."""
    import paddle
    to_static = paddle.jit.to_static

    @functools.wraps(to_static)
    def to_static_full_graph(*args, **kwargs):
        kwargs.setdefault('full_graph', True)
        return to_static(*args, **kwargs)

    paddle.jit.to_static = to_static_full_graph
    try:
        yield
    finally:
        paddle.jit.to_static = to_static


def get_infer_cfg_and_input_spec(self, *args, **kwargs):
    with full_graph_by_default():
        return original(get_infer_cfg_and_input_spec)(self, *args, **kwargs)


def _double(x):
    return x * 2


def _paddle_defaults_to_partial_graph():
    """True if a `to_static` function without `full_graph` has no `main_program` (Paddle 3).
    A parameter-free function: the probe must not use up parameter names or random numbers."""
    import paddle
    static = paddle.jit.to_static(_double, input_spec=[paddle.static.InputSpec([None, 2])])
    try:
        static.main_program
    except RuntimeError:
        return True
    return False


def probe():
    """True if this Paddle needs `full_graph=True` for `main_program` and the installed
    Trainer traces without asking for it (a cheap source check: building a real export
    needs a whole detector)."""
    method = getattr(_trainer_class(), METHOD)
    if 'full_graph' in inspect.getsource(method) or getattr(method, '__ppdet_gcnet_fix__', None):
        return False
    return _paddle_defaults_to_partial_graph()


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    return [(_trainer_class(), METHOD)]


def apply():
    return replace(_trainer_class(), METHOD, get_infer_cfg_and_input_spec, NAME)
