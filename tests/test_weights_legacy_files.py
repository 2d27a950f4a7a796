"""Legacy weight files written here from known arrays, read back by the project's readers.

The writers below are this test's own, from the format description (REFERENCE.md): a LoDTensor
stream per variable (Paddle 1.x `save_persistables`), and a protocol-2 pickle of name -> array
(Paddle 1.x `fluid.save`). They are shared with test_weights_convert.py.
"""
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from ppdet_gcnet.weights.legacy_pickle import UnsafePickleError, load_array_pickle
from ppdet_gcnet.weights.lodtensor import LoDTensorFormatError, load_lod_tensor_file

_TYPE_ENUM = {np.dtype('float32'): 5, np.dtype('float64'): 6, np.dtype('int32'): 2,
              np.dtype('int64'): 3, np.dtype('float16'): 4, np.dtype('uint8'): 20,
              np.dtype('int8'): 21, np.dtype('bool'): 0}


def _varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def lod_tensor_bytes(array, lod=(), packed_dims=False):
    array = np.ascontiguousarray(array)
    desc = b'\x08' + _varint(_TYPE_ENUM[array.dtype])
    if packed_dims:
        dims = b''.join(_varint(d) for d in array.shape)
        desc += b'\x12' + _varint(len(dims)) + dims
    else:
        desc += b''.join(b'\x10' + _varint(d) for d in array.shape)
    out = struct.pack('<IQ', 0, len(lod))
    for level in lod:
        out += struct.pack('<Q', 8 * len(level)) + np.asarray(level, '<u8').tobytes()
    out += struct.pack('<Ii', 0, len(desc)) + desc
    return out + array.astype(array.dtype.newbyteorder('<')).tobytes()


def write_lod_tensor_folder(folder, arrays):
    os.makedirs(folder, exist_ok=True)
    for name, array in arrays.items():
        with open(os.path.join(folder, name), 'wb') as handle:
            handle.write(lod_tensor_bytes(array))
    return folder


def write_fluid_pickle(path, arrays):
    with open(path, 'wb') as handle:
        pickle.dump({k: np.asarray(v) for k, v in arrays.items()}, handle, protocol=2)
    return path


def tar_folder(folder, archive, arcname):
    with tarfile.open(archive, 'w') as tar:
        tar.add(folder, arcname=arcname)
    return archive


@pytest.mark.parametrize('dtype', ['float32', 'float64', 'int64', 'int32', 'float16', 'uint8'])
@pytest.mark.parametrize('packed', [False, True])
def test_lod_tensor_round_trip(tmp_path, dtype, packed):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 2)) * 10).astype(dtype)
    path = tmp_path / 'var'
    path.write_bytes(lod_tensor_bytes(array, lod=[[0, 2, 3]], packed_dims=packed))
    got = load_lod_tensor_file(path)
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_scalar_and_empty_shapes(tmp_path):
    for shape in [(1,), (0, 5), (7,)]:
        array = np.arange(int(np.prod(shape)), dtype='float32').reshape(shape)
        (tmp_path / 'v').write_bytes(lod_tensor_bytes(array))
        np.testing.assert_array_equal(load_lod_tensor_file(tmp_path / 'v'), array)


def test_truncated_and_trailing_bytes_are_errors(tmp_path):
    data = lod_tensor_bytes(np.ones((4, 4), 'float32'))
    (tmp_path / 'short').write_bytes(data[:-3])
    with pytest.raises(LoDTensorFormatError, match='short: truncated'):
        load_lod_tensor_file(tmp_path / 'short')
    (tmp_path / 'long').write_bytes(data + b'\0' * 8)
    with pytest.raises(LoDTensorFormatError, match='trailing bytes'):
        load_lod_tensor_file(tmp_path / 'long')
    (tmp_path / 'text').write_bytes(b'not a tensor at all, really')
    with pytest.raises(LoDTensorFormatError, match='text'):
        load_lod_tensor_file(tmp_path / 'text')


def test_fluid_pickle_round_trip(tmp_path):
    arrays = {'conv1_1_weights': np.arange(6, dtype='float32').reshape(2, 3),
              'bnv1_1_mean': np.ones(3, 'float32')}
    got = load_array_pickle(write_fluid_pickle(tmp_path / 'model.pdparams', arrays))
    assert set(got) == set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(got[name], arrays[name])


class _Evil:
    def __reduce__(self):
        return (os.system, ('touch PWNED',))


def test_pickle_that_imports_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'evil.pdparams'
    with open(path, 'wb') as handle:
        pickle.dump({'w': np.zeros(2, 'float32'), 'x': _Evil()}, handle, protocol=2)
    with pytest.raises(UnsafePickleError, match=r'imports (posix|os)\.system'):
        load_array_pickle(path)
    assert not (tmp_path / 'PWNED').exists()
