"""Stream a planned model into a GGUF file, one tensor (or row chunk) at a time.

``gguf.GGUFWriter`` writes the header, metadata and tensor-info table; the
tensor data is then written by us in plan order, chunk by chunk, with the
same alignment rules, so memory stays bounded by the chunk size (and by the
largest tensor that needs a whole-tensor transform: the linear-attention ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from tmax_local.convert.qwen35 import ARCH, HParams, PlannedTensor, write_metadata
from tmax_local.convert.vocab import Vocab, write_vocab
from tmax_local.errors import ConversionError

CHUNK_BYTES = 64 * 1024 * 1024  # f32 bytes per streamed row chunk


def _gguf():
    import gguf

    return gguf


def nbytes_for(shape: tuple[int, ...], tname: str) -> int:
    gguf = _gguf()
    qt = gguf.GGMLQuantizationType[tname]
    block, type_size = gguf.GGML_QUANT_SIZES[qt]
    n = math.prod(shape)
    return n // block * type_size


def encode(arr: np.ndarray, tname: str) -> np.ndarray:
    """float32 rows → the bytes of ``tname`` (F32, F16, BF16 or Q8_0)."""
    if tname == "F32":
        return np.ascontiguousarray(arr, dtype="<f4")
    if tname == "F16":
        with np.errstate(over="ignore"):  # overflow is reported by _checked
            return np.ascontiguousarray(arr, dtype="<f2")
    gguf = _gguf()
    return gguf.quants.quantize(
        np.ascontiguousarray(arr, dtype=np.float32), gguf.GGMLQuantizationType[tname]
    )


def _raw_passthrough(t: PlannedTensor, tname: str) -> bool:
    return t.transform is None and (t.src.dtype, tname) in {
        ("BF16", "BF16"),
        ("F16", "F16"),
        ("F32", "F32"),
    }


def _chunks(t: PlannedTensor, tname: str) -> Iterable[np.ndarray]:
    if _raw_passthrough(t, tname):
        for first, n in t.src.iter_row_chunks(CHUNK_BYTES):
            yield t.src.read_raw(first, n)
    elif t.transform is None:
        for first, n in t.src.iter_row_chunks(CHUNK_BYTES):
            yield _checked(t, encode(t.src.read_f32(first, n), tname), tname)
    else:
        data = t.transform(t.src.read_f32())
        if data.shape != t.shape:
            raise AssertionError(f"{t.name}: transform produced {data.shape}, planned {t.shape}")
        yield _checked(t, encode(data, tname), tname)


def _checked(t: PlannedTensor, out: np.ndarray, tname: str) -> np.ndarray:
    """bf16/f32 weights can exceed F16's range (±65504); say so instead of writing inf."""
    if tname == "F16" and not np.isfinite(out).all():
        raise ConversionError(
            f"tensor {t.src.name!r} has values outside the F16 range (or not finite); "
            "use BF16 or F32 instead"
        )
    return out


def write_gguf(
    path: Path,
    *,
    model_name: str,
    hp: HParams,
    vocab: Vocab,
    chat_template: str | None,
    plan: list[PlannedTensor],
    type_of: Callable[[PlannedTensor], str],
    file_type: int,
    progress: bool = True,
    on_tensor: Callable[[PlannedTensor], None] | None = None,
) -> None:
    """Write ``plan`` to ``path`` (which must not be the final name: callers rename)."""
    gguf = _gguf()
    writer = gguf.GGUFWriter(path, ARCH)
    try:
        writer.add_name(model_name)
        writer.add_file_type(file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_metadata(writer, hp)
        write_vocab(writer, vocab, chat_template)
        types = [type_of(t) for t in plan]
        sizes = [nbytes_for(t.shape, tn) for t, tn in zip(plan, types, strict=True)]
        for t, tn, nb in zip(plan, types, sizes, strict=True):
            writer.add_tensor_info(
                t.name, t.shape, np.dtype(np.float32), nb, raw_dtype=gguf.GGMLQuantizationType[tn]
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        assert writer.fout is not None
        fout = writer.fout[0]
        writer.write_padding(fout, fout.tell())
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=sum(sizes), unit="B", unit_scale=True, desc="Writing GGUF", leave=False
            )
        try:
            for t, tn, nb in zip(plan, types, sizes, strict=True):
                if on_tensor is not None:
                    on_tensor(t)
                written = 0
                for chunk in _chunks(t, tn):
                    chunk.tofile(fout)
                    written += chunk.nbytes
                    if bar is not None:
                        bar.update(chunk.nbytes)
                if written != nb:
                    raise AssertionError(f"{t.name}: wrote {written} bytes, planned {nb}")
                writer.write_padding(fout, nb)
        finally:
            if bar is not None:
                bar.close()
        fout.flush()
    finally:
        writer.close()
