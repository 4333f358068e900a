"""The IDX file format (MNIST, Fashion-MNIST), read with numpy alone.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in big-endian C order. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from edgeresnet.errors import DatasetError

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
            handle.seek(0)
            if head == _GZIP_MAGIC:
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    return unzipped.read()
            return handle.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc} (truncated or corrupt download?)") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a native-endian array; a bad file raises DatasetError."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path} is not an IDX file: only {len(data)} bytes")
    zero1, zero2, type_code, ndim = data[:4]
    if zero1 != 0 or zero2 != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise DatasetError(f"{path} is not an IDX file: bad magic number 0x{data[:4].hex()}")
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise DatasetError(f"{path} is truncated: the header needs {header_end} bytes, file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = header_end + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "corrupt (trailing bytes)"
        raise DatasetError(f"{path} is {problem}: shape {shape} needs {expected} bytes, file has {len(data)}")
    values = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)
