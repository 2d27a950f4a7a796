"""PyTorch checkpoints (`.pth`, as mmdetection publishes them) read into NumPy without torch and
without running any code from the file.

`torch.save` writes either a zip (torch >= 1.6: `<root>/data.pkl` plus one raw file per storage
under `<root>/data/`) or the older single stream (magic number, protocol, system info, the pickle,
the list of storage keys, then each storage as an int64 element count and its raw bytes). Both
pickles name their tensors through `torch._utils._rebuild_tensor_v2` and storage classes such as
`torch.FloatStorage`. The unpickler below resolves those names to small functions of its own that
build NumPy arrays; `collections.OrderedDict` is the only other real class it hands out. Any other
global the pickle names (mmdetection's `meta` can hold config objects) becomes an inert
placeholder that records its arguments and never imports or calls anything.
"""
import io
import pickle
import struct
import zipfile

import numpy as np

# torch storage class -> NumPy dtype (bfloat16 is widened to float32 on read)
STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': 'bfloat16', 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_REBUILD_TENSOR = {('torch._utils', '_rebuild_tensor_v2'), ('torch._utils', '_rebuild_tensor')}
_REBUILD_PARAMETER = ('torch._utils', '_rebuild_parameter')
_NUMPY_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode'),
}


class CheckpointError(ValueError):
    """Not a readable PyTorch checkpoint, or one without a state dict of tensors."""


class Opaque:
    """Stand-in for a global the pickle names but a weights file does not need. It accepts any
    construction and state and keeps them as data."""
    qualname = '?'

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items = args, None, []
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items.append((key, value))

    def append(self, value):
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)

    def __repr__(self):
        return f'<opaque {self.qualname}>'


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _opaque_class(module, name):
    return type(name, (Opaque,), {'qualname': f'{module}.{name}'})


def _bfloat16_to_float32(raw):
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)


def _storage_array(raw, storage_type):
    if storage_type.dtype == 'bfloat16':
        return _bfloat16_to_float32(raw)
    return np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder('<'))


_TYPES_ONLY = object()   # the legacy reader's first pass: storages not read yet


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """A tensor view (offset, size, stride in elements) of a storage -> its own NumPy array."""
    if storage is _TYPES_ONLY:
        return None
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[storage_offset])
    needed = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    if needed > storage.size or min(stride) < 0:
        raise CheckpointError(f"tensor view {size}/{stride}+{storage_offset} exceeds its "
                              f"storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size,
        strides=tuple(s * storage.itemsize for s in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


class _CheckpointUnpickler(pickle.Unpickler):
    def __init__(self, stream, load_storage, source):
        super().__init__(stream, encoding='latin1')
        self._load_storage = load_storage
        self._source = source
        self.opaque = set()

    def find_class(self, module, name):
        if (module, name) in _REBUILD_TENSOR:
            return _rebuild_tensor
        if (module, name) == _REBUILD_PARAMETER:
            return _rebuild_parameter
        if module == 'torch' and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ('collections', 'OrderedDict'):
            return super().find_class(module, name)
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        self.opaque.add(f'{module}.{name}')
        return _opaque_class(module, name)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != 'storage':
            raise CheckpointError(f"{self._source}: unknown persistent id {str(pid)[:80]}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self._source}: storage of unsupported type {storage_type!r}")
        array = self._load_storage(key, storage_type)
        view = pid[5] if len(pid) > 5 else None      # legacy format: (view_key, offset, size)
        if view and array is not _TYPES_ONLY:
            _, offset, size = view
            array = array[offset:offset + size]
        return array


def _load_zip(path, data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: a zip without exactly one data.pkl (not a torch "
                                  f"checkpoint)")
        root = pickles[0][:-len('data.pkl')]
        cache = {}

        def load_storage(key, storage_type):
            if key not in cache:
                member = f'{root}data/{key}'
                if member not in names:
                    raise CheckpointError(f"{path}: storage {key!r} missing from the zip")
                cache[key] = _storage_array(archive.read(member), storage_type)
            return cache[key]

        unpickler = _CheckpointUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage, path)
        return unpickler.load(), unpickler.opaque


def _load_legacy(path, data):
    """Pre-zip stream: the storages' bytes follow the pickle, so the pickle is read twice: once
    to learn each storage's type, once (after the bytes are read) to build the tensors."""
    stream = io.BytesIO(data)

    def plain_load():
        return _CheckpointUnpickler(stream, None, path).load()
    if plain_load() != LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    plain_load()          # protocol version
    sys_info = plain_load()
    if isinstance(sys_info, dict) and sys_info.get('little_endian') is False:
        raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
    pickle_start = stream.tell()
    types = {}

    def note_type(key, storage_type):
        types[key] = storage_type
        return _TYPES_ONLY
    _CheckpointUnpickler(stream, note_type, path).load()
    keys = plain_load()
    storages = {}
    for key in keys:
        key = str(key)
        if key not in types:
            raise CheckpointError(f"{path}: storage {key!r} is not referenced")
        (count,) = struct.unpack('<q', stream.read(8))
        dtype = types[key].dtype
        itemsize = 2 if dtype == 'bfloat16' else np.dtype(dtype).itemsize
        raw = stream.read(count * itemsize)
        if count < 0 or len(raw) != count * itemsize:
            raise CheckpointError(f"{path}: truncated storage {key!r}")
        storages[key] = _storage_array(raw, types[key])

    def load_storage(key, storage_type):
        if key not in storages:
            raise CheckpointError(f"{path}: storage {key!r} has no data")
        return storages[key]
    stream.seek(pickle_start)
    unpickler = _CheckpointUnpickler(stream, load_storage, path)
    return unpickler.load(), unpickler.opaque


def load_torch_checkpoint(path):
    """Whole checkpoint object (dicts, lists, NumPy arrays, Opaque placeholders) and the set of
    globals that were replaced by placeholders."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror})") from None
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _load_zip(path, data)
        if data[:1] == b'\x80':
            return _load_legacy(path, data)
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 (any decoding failure means a bad file)
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({error})") from None
    raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip nor a pickle)")


def load_state_dict(path):
    """mmdetection checkpoint -> (state dict name -> ndarray, meta dict or {})."""
    obj, _ = load_torch_checkpoint(path)
    meta = {}
    if isinstance(obj, dict) and 'state_dict' in obj:
        meta = obj.get('meta') if isinstance(obj.get('meta'), dict) else {}
        obj = obj['state_dict']
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    arrays = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not arrays:
        raise CheckpointError(f"{path}: contains no tensors")
    return arrays, meta
