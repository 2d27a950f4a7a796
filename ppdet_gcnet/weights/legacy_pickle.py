"""Weights pickles (`fluid.save` / `paddle.save` `.pdparams`) read without running their code.

A pickle can import and call anything, so a weights file from the network must not go through
`pickle.load`. This unpickler resolves only the few globals that numpy arrays and plain dicts
need; any other import in the stream ends the load with an error naming it.
"""
import io
import pickle

import numpy as np

_ALLOWED_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('collections', 'OrderedDict'),
    ('_codecs', 'encode'),  # protocol-2 pickles from Python 3 spell bytes this way
}
# Python 2 era files pickled `str` keys/bytes; latin1 turns them back into the exact bytes.
_ENCODING = 'latin1'


class UnsafePickleError(ValueError):
    """The pickle wants a global outside the allow-list, or is not a dict of arrays."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def __init__(self, stream, source):
        super().__init__(stream, encoding=_ENCODING)
        self._source = source

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self._source}: refuses to load: the pickle imports {module}.{name}, which "
                f"a weights file never needs (only numpy arrays and dicts are allowed)")
        return super().find_class(module, name)


def load_array_pickle(path):
    """Pickled dict of name -> ndarray (non-array entries such as paddle's
    `StructuredToParameterName@@` table are dropped) -> dict of ndarray."""
    with open(path, 'rb') as handle:
        data = handle.read()
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(data), path).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # noqa: BLE001 (any decoding failure is a bad file)
        raise UnsafePickleError(f"{path}: not a readable weights pickle ({error})") from None
    if not isinstance(obj, dict):
        raise UnsafePickleError(f"{path}: holds a {type(obj).__name__}, not a dict of arrays")
    arrays = {}
    for key, value in obj.items():
        if isinstance(key, bytes):
            key = key.decode('utf-8', 'replace')
        if isinstance(value, np.ndarray):
            arrays[str(key)] = value
    if not arrays:
        raise UnsafePickleError(f"{path}: contains no arrays")
    return arrays


def is_pickle(path):
    """A pickle stream starts with PROTO (0x80) for protocols >= 2."""
    try:
        with open(path, 'rb') as handle:
            return handle.read(1) == b'\x80'
    except OSError:
        return False
