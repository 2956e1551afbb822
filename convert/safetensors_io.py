"""Minimal, streaming safetensors reader.

We parse the JSON header ourselves and map only the byte ranges we need with
``numpy.memmap``; a mapping is dropped as soon as its rows are consumed, so the
process never holds a whole model (or even a whole large tensor) in memory.

Format (https://huggingface.co/docs/safetensors): 8-byte little-endian header
length N, N bytes of JSON ``{name: {dtype, shape, data_offsets: [begin, end]}}``
(offsets relative to the end of the header), then the raw little-endian data.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tmax_local.errors import ConversionError

# safetensors dtype name -> (numpy dtype used to read raw values, bytes per element)
_DTYPES: dict[str, np.dtype] = {
    "BF16": np.dtype("<u2"),  # raw bf16 bits; widened to f32 on read
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
}

_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor's bytes live; nothing is read until asked."""

    name: str
    path: Path
    dtype: str  # "BF16" | "F16" | "F32"
    shape: tuple[int, ...]
    offset: int  # absolute byte offset in the file
    nbytes: int

    @property
    def n_rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def row_elems(self) -> int:
        return (
            math.prod(self.shape[1:])
            if len(self.shape) > 1
            else (self.shape[0] if self.shape else 1)
        )

    def _map(self, first_row: int, n_rows: int) -> np.ndarray:
        raw = _DTYPES[self.dtype]
        if len(self.shape) <= 1:
            count, start = math.prod(self.shape) if self.shape else 1, 0
        else:
            count, start = n_rows * self.row_elems, first_row * self.row_elems
        if count == 0:
            return np.zeros(0, dtype=raw)
        return np.memmap(
            self.path,
            dtype=raw,
            mode="r",
            offset=self.offset + start * raw.itemsize,
            shape=(count,),
        )

    def read_raw(self, first_row: int = 0, n_rows: int | None = None) -> np.ndarray:
        """Rows ``[first_row, first_row+n_rows)`` in the file's own dtype (a fresh copy)."""
        n = self.n_rows - first_row if n_rows is None else n_rows
        mm = self._map(first_row, n)
        out = np.array(mm)  # copy, then let the mapping go
        del mm
        shape = (n, *self.shape[1:]) if len(self.shape) > 1 else self.shape
        return out.reshape(shape)

    def read_f32(self, first_row: int = 0, n_rows: int | None = None) -> np.ndarray:
        """Rows as float32 (bf16 widened by a 16-bit shift)."""
        raw = self.read_raw(first_row, n_rows)
        if self.dtype == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32, copy=False)

    def iter_row_chunks(self, max_bytes: int) -> Iterator[tuple[int, int]]:
        """(first_row, n_rows) chunks of at most ``max_bytes`` of f32 each."""
        per_row = max(1, self.row_elems * 4)
        step = max(1, max_bytes // per_row)
        rows = self.n_rows if len(self.shape) > 1 else 1
        for first in range(0, rows, step):
            yield first, min(step, rows - first)


def read_header(path: Path) -> dict[str, TensorRef]:
    """Parse one .safetensors file's header and check it against the file size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ConversionError(f"{path.name}: truncated safetensors file (no header)")
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or n > _MAX_HEADER or 8 + n > size:
                raise ConversionError(f"{path.name}: corrupt safetensors header (length {n})")
            meta = json.loads(f.read(n))
    except OSError as err:
        raise ConversionError(f"cannot read {path}: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConversionError(f"{path.name}: corrupt safetensors header (not JSON)") from None
    if not isinstance(meta, dict):
        raise ConversionError(f"{path.name}: corrupt safetensors header")
    base = 8 + n
    refs: dict[str, TensorRef] = {}
    for name, info in meta.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = info["dtype"], tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ConversionError(f"{path.name}: corrupt header entry for {name!r}") from None
        if dtype not in _DTYPES:
            raise ConversionError(
                f"{path.name}: tensor {name!r} has dtype {dtype}; "
                "only BF16, F16 and F32 are supported"
            )
        expected = math.prod(shape) * _DTYPES[dtype].itemsize
        if end - begin != expected or begin < 0:
            raise ConversionError(
                f"{path.name}: corrupt header: {name!r} size does not match its shape"
            )
        if base + end > size:
            raise ConversionError(
                f"{path.name}: truncated safetensors file ({size} bytes, tensor {name!r} needs "
                f"{base + end})"
            )
        refs[name] = TensorRef(name, path, dtype, shape, base + begin, expected)
    return refs


def write_safetensors(
    path: Path,
    tensors: list[tuple[str, str, tuple[int, ...]]],
    produce,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write a safetensors file tensor by tensor.

    ``tensors`` lists (name, dtype, shape) in file order; ``produce(name)`` returns that
    tensor's data as a numpy array, or an iterable of row chunks (raw uint16 bits for BF16).
    Only one tensor (or chunk) is in memory at a time. Used by the test/benchmark checkpoint
    generator.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape in tensors:
        nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, dtype, shape in tensors:
            data = produce(name)
            parts = [data] if isinstance(data, np.ndarray) else data  # array or row chunks
            written = 0
            for part in parts:
                arr = np.ascontiguousarray(part, dtype=_DTYPES[dtype])
                arr.tofile(f)
                written += arr.size
            if written != math.prod(shape):
                raise ValueError(f"{name}: produced {written} values, declared shape {shape}")
