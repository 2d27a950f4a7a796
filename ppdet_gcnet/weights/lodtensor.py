"""Reader for Paddle's LoDTensor stream: the per-variable files of legacy static-graph models.

Layout of one serialized tensor (Paddle 1.x `save_persistables`, one file per variable):
    uint32  LoD version (0)
    uint64  number of LoD levels, then per level: uint64 byte size + that many bytes of offsets
    uint32  tensor version (0)
    int32   byte size of the TensorDesc protobuf, then the protobuf
            (field 1: data type enum, field 2: repeated int64 dims, packed or not)
    raw     numel * itemsize bytes, little endian, C order
Reading it ourselves needs neither the static-graph API nor the PIR switch it depends on.
"""
import struct

import numpy as np

# Paddle's VarType.Type enum values for the dtypes a weights file can hold.
_DTYPES = {
    0: np.dtype('bool'), 1: np.dtype('<i2'), 2: np.dtype('<i4'), 3: np.dtype('<i8'),
    4: np.dtype('<f2'), 5: np.dtype('<f4'), 6: np.dtype('<f8'), 20: np.dtype('u1'),
    21: np.dtype('i1'), 22: 'bfloat16',
}
_MAX_DESC_BYTES = 1 << 16    # a TensorDesc is a few bytes; anything huge is not a tensor file
_MAX_LOD_BYTES = 1 << 30


class LoDTensorFormatError(ValueError):
    """The bytes are not one LoDTensor; the message names the file and what is wrong."""


def _read_exact(buffer, offset, size, what, source):
    end = offset + size
    if size < 0 or end > len(buffer):
        raise LoDTensorFormatError(
            f"{source}: truncated LoDTensor ({what} needs {size} bytes at offset {offset}, "
            f"file has {len(buffer)})")
    return buffer[offset:end], end


def _varint(data, pos, source):
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise LoDTensorFormatError(f"{source}: malformed TensorDesc (bad varint)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def parse_tensor_desc(data, source='<bytes>'):
    """TensorDesc protobuf -> (type enum, dims list)."""
    data_type, dims, pos = None, [], 0
    while pos < len(data):
        key, pos = _varint(data, pos, source)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            data_type, pos = _varint(data, pos, source)
        elif field == 2 and wire == 0:
            dim, pos = _varint(data, pos, source)
            dims.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
        elif field == 2 and wire == 2:
            size, pos = _varint(data, pos, source)
            end = pos + size
            if end > len(data):
                raise LoDTensorFormatError(f"{source}: malformed TensorDesc (dims overrun)")
            while pos < end:
                dim, pos = _varint(data, pos, source)
                dims.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
        else:
            raise LoDTensorFormatError(
                f"{source}: unexpected TensorDesc field {field} (wire type {wire})")
    if data_type is None:
        raise LoDTensorFormatError(f"{source}: TensorDesc has no data type")
    return data_type, dims


def read_lod_tensor(buffer, offset=0, source='<bytes>'):
    """Parse one LoDTensor starting at `offset`; return (array, lod, end offset)."""
    raw, offset = _read_exact(buffer, offset, 4, 'LoD version', source)
    (version,) = struct.unpack('<I', raw)
    if version != 0:
        raise LoDTensorFormatError(f"{source}: not a LoDTensor (LoD version {version}, want 0)")
    raw, offset = _read_exact(buffer, offset, 8, 'LoD level count', source)
    (levels,) = struct.unpack('<Q', raw)
    if levels > 16:
        raise LoDTensorFormatError(f"{source}: not a LoDTensor ({levels} LoD levels)")
    lod = []
    for _ in range(levels):
        raw, offset = _read_exact(buffer, offset, 8, 'LoD level size', source)
        (size,) = struct.unpack('<Q', raw)
        if size % 8 or size > _MAX_LOD_BYTES:
            raise LoDTensorFormatError(f"{source}: bad LoD level size {size}")
        raw, offset = _read_exact(buffer, offset, size, 'LoD level', source)
        lod.append(np.frombuffer(raw, dtype='<u8').tolist())
    raw, offset = _read_exact(buffer, offset, 4, 'tensor version', source)
    (tensor_version,) = struct.unpack('<I', raw)
    if tensor_version != 0:
        raise LoDTensorFormatError(f"{source}: unsupported tensor version {tensor_version}")
    raw, offset = _read_exact(buffer, offset, 4, 'TensorDesc size', source)
    (desc_size,) = struct.unpack('<i', raw)
    if not 0 < desc_size <= _MAX_DESC_BYTES:
        raise LoDTensorFormatError(f"{source}: bad TensorDesc size {desc_size}")
    desc, offset = _read_exact(buffer, offset, desc_size, 'TensorDesc', source)
    type_enum, dims = parse_tensor_desc(bytes(desc), source)
    if type_enum not in _DTYPES:
        raise LoDTensorFormatError(f"{source}: unsupported data type enum {type_enum}")
    if any(d < 0 for d in dims):
        raise LoDTensorFormatError(f"{source}: negative dimension in {dims}")
    dtype = _DTYPES[type_enum]
    numel = int(np.prod(dims, dtype=np.int64)) if dims else 1
    itemsize = 2 if dtype == 'bfloat16' else dtype.itemsize
    raw, offset = _read_exact(buffer, offset, numel * itemsize, f'data of shape {dims}', source)
    if dtype == 'bfloat16':
        # numpy has no bfloat16: widen to float32 (bf16 is the top half of a float32).
        array = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
    else:
        array = np.frombuffer(raw, dtype=dtype)
    return array.reshape(dims).copy(), lod, offset


def load_lod_tensor_file(path):
    """One variable file -> numpy array; anything but exactly one tensor is an error."""
    with open(path, 'rb') as handle:
        buffer = handle.read()
    array, _, end = read_lod_tensor(buffer, 0, source=str(path))
    if end != len(buffer):
        raise LoDTensorFormatError(
            f"{path}: {len(buffer) - end} trailing bytes after the tensor (a combined "
            f"parameter file? those need the program's variable order and are not supported)")
    return array


def looks_like_lod_tensor(path):
    """Cheap header check: LoD version 0 and a sane level count."""
    try:
        with open(path, 'rb') as handle:
            head = handle.read(12)
    except OSError:
        return False
    if len(head) < 12:
        return False
    version, levels = struct.unpack('<IQ', head)
    return version == 0 and levels <= 16
