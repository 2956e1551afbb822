"""Importance matrix: collect it on llama.cpp, read and write llama.cpp's GGUF imatrix file,
hand it to the quantizer.

What is collected (the statistic of llama.cpp's ``llama-imatrix``): for every matrix
multiplication whose first operand is a weight tensor of a block (``blk.*``), the sum over
all evaluated token rows of the squared input activation, per input column, and the number
of rows. It is gathered in-process through llama.cpp's graph evaluation callback
(``llama_context_params.cb_eval``): asked about each graph node, we ask for the data of
``MUL_MAT`` nodes with a ``blk.*`` weight and an F32 activation of at least 16 rows; once
llama.cpp has computed up to that node we read the activation (``src[1]``), copying it from
the backend first when it is not in host memory.

File format (GGUF, interchangeable with llama.cpp's tools)::

    general.type          = "imatrix"
    imatrix.datasets      = [str, ...]   what the statistic was computed on
    imatrix.chunk_count   = u32          number of chunks evaluated
    imatrix.chunk_size    = u32          tokens per chunk
    <weight>.in_sum2      F32 [n_per_row, n_mat]   sum of squared inputs per column
    <weight>.counts       F32 [1, n_mat]           number of input rows summed

``in_sum2 / counts`` is the mean squared input per column: the weighting the quantizer uses
(``llama_model_quantize_params.imatrix``, a list of ``{name, data, size}`` records ended by a
record with a null name).
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmax_local.errors import Interrupted, TmaxError

MIN_ROWS = 16  # llama-imatrix ignores smaller batches
DEFAULT_CHUNKS = 64  # chunks of calibration text evaluated by default (32k tokens at 512)


class ImatrixError(TmaxError):
    title = "Importance matrix"


@dataclass
class Imatrix:
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [n_mat, n_per_row] f64
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [n_mat] int64
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0

    def mean_sq(self, name: str) -> np.ndarray:
        """``in_sum2 / counts`` per matrix ([n_mat, n_per_row]); rows never seen read 1."""
        s = self.sums[name]
        c = self.counts[name].astype(np.float64)[:, None]
        out = np.ones_like(s)
        np.divide(s, c, out=out, where=c > 0)
        return out

    def names(self) -> list[str]:
        return sorted(self.sums)


def _weight_name(raw: bytes) -> str:
    """``CUDA0#blk.0.attn_k.weight#0`` → ``blk.0.attn_k.weight`` (scheduler copies)."""
    name = raw.decode("utf-8", "replace")
    if "#" in name:
        name = name.split("#")[1]
    return name


class Collector:
    """The ``cb_eval`` callback: accumulates the statistic into ``self.imatrix``."""

    def __init__(self, include_output: bool = False) -> None:
        from tmax_local.convert.llama_eval import ggml

        self.g = ggml()
        self.imatrix = Imatrix()
        self.include_output = include_output
        self.error: BaseException | None = None

    def _wanted(self, t: Any) -> bool:
        from tmax_local.convert.llama_eval import GGML_TYPE_F32, GGMLTensor

        if t.op != self.g.MUL_MAT or not t.src[0] or not t.src[1]:
            return False
        src0 = GGMLTensor.from_address(t.src[0])
        src1 = GGMLTensor.from_address(t.src[1])
        if src1.type != GGML_TYPE_F32 or src1.ne[1] < MIN_ROWS:
            return False
        name = _weight_name(src0.name)
        return name.startswith("blk.") or (self.include_output and name == "output.weight")

    def __call__(self, ptr: int, ask: bool) -> bool:
        if self.error is not None:
            return False  # stop this graph as soon as possible; the error is re-raised later
        try:
            from tmax_local.convert.llama_eval import GGMLTensor

            t = GGMLTensor.from_address(ptr)
            if ask:
                return self._wanted(t)
            self._collect(t)
            return True
        except BaseException as err:
            self.error = err
            return False

    def _collect(self, t: Any) -> None:
        from tmax_local.convert.llama_eval import GGMLTensor

        src0 = GGMLTensor.from_address(t.src[0])
        src1 = GGMLTensor.from_address(t.src[1])
        name = _weight_name(src0.name)
        x = self.g.tensor_f32(src1, t.src[1])  # (ne3, ne2, ne1, ne0)
        m2, m3 = int(src0.ne[2]), int(src0.ne[3])
        n_mat = m2 * m3
        ne0 = x.shape[3]
        sums = self.imatrix.sums.get(name)
        if sums is None:
            sums = self.imatrix.sums[name] = np.zeros((n_mat, ne0), np.float64)
            self.imatrix.counts[name] = np.zeros(n_mat, np.int64)
        elif sums.shape != (n_mat, ne0):
            raise ImatrixError(f"inconsistent activation size for {name}")
        sq = np.square(x, dtype=np.float64)
        if n_mat == 1:
            sums[0] += sq.sum(axis=(0, 1, 2))
        else:  # 3-D weights: activation matrix (i2, i3) multiplies weight matrix (i2%m2, i3%m3)
            for i3 in range(x.shape[0]):
                for i2 in range(x.shape[1]):
                    sums[(i3 % m3) * m2 + (i2 % m2)] += sq[i3, i2].sum(axis=0)
        if not np.isfinite(sums).all():
            raise ImatrixError(f"non-finite activations in {name}")
        self.imatrix.counts[name] += (x.shape[0] * x.shape[1] * x.shape[2]) // n_mat

    def raise_pending(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise err


def collect(
    model_path: str | Path,
    chunks: Sequence[Sequence[int]] | None = None,
    *,
    docs: Sequence[Any] | None = None,
    chunk_size: int = 512,
    max_chunks: int | None = None,
    datasets: Sequence[str] = (),
    threads: int | None = None,
    n_batch: int | None = None,
    kv_f32: bool = False,
    progress: bool = False,
    include_output: bool = False,
) -> Imatrix:
    """Evaluate token ``chunks`` — or the ``docs`` (``calibration.Document``) cut into chunks
    of ``chunk_size`` tokens, at most ``max_chunks`` — on the GGUF at ``model_path``, each
    chunk from a fresh state, and return the collected importance matrix."""
    from tmax_local.convert.calibration import make_chunks
    from tmax_local.convert.llama_eval import Evaluator

    collector = Collector(include_output=include_output)
    batch = n_batch or min(chunk_size, 256)
    bar = None
    start = time.monotonic()
    n_tok = 0
    try:
        with Evaluator(
            model_path,
            n_ctx=chunk_size,
            n_batch=batch,
            threads=threads,
            kv_f32=kv_f32,
            callback=collector,
        ) as ev:
            if chunks is None:
                if docs is None:
                    raise ValueError("collect() needs chunks or docs")
                chunks = make_chunks(
                    docs, lambda t, sp: ev.tokenize(t, special=sp), chunk_size, max_chunks
                )
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(chunks), unit="chunk", desc="Importance matrix", leave=False)
            for chunk in chunks:
                if len(chunk) > chunk_size:
                    raise ImatrixError(f"a chunk of {len(chunk)} tokens exceeds {chunk_size}")
                for _ in ev.eval_chunk(list(chunk), logits=False):
                    collector.raise_pending()
                n_tok += len(chunk)
                if bar is not None:
                    bar.set_postfix_str(f"{n_tok / max(1e-9, time.monotonic() - start):.0f} tok/s")
                    bar.update(1)
    except KeyboardInterrupt:
        raise Interrupted("importance matrix interrupted; no file was written") from None
    finally:
        if bar is not None:
            bar.close()
    im = collector.imatrix
    im.datasets = list(datasets)
    im.chunk_count = len(chunks)
    im.chunk_size = chunk_size
    if not im.sums:
        raise ImatrixError("no matrix multiplication was seen; is this a qwen35 GGUF?")
    return im


# -- file --------------------------------------------------------------------------------


def save(im: Imatrix, path: str | Path) -> Path:
    """Write ``im`` atomically in llama.cpp's GGUF imatrix format."""
    import tempfile

    import gguf

    path = Path(path).expanduser()
    if path.is_dir():
        raise ImatrixError(f"output {path} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as err:
        raise ImatrixError(f"cannot write to {path.parent}: {err.strerror or err}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        w = gguf.GGUFWriter(str(tmp), arch="imatrix", use_temp_file=False)
        # llama.cpp's writer sets no architecture; drop the key GGUFWriter adds by default.
        for kv in w.kv_data:
            kv.pop(gguf.Keys.General.ARCHITECTURE, None)
        w.add_type("imatrix")
        w.add_array("imatrix.datasets", list(im.datasets) or ["unknown"])
        w.add_uint32("imatrix.chunk_count", int(im.chunk_count))
        w.add_uint32("imatrix.chunk_size", int(im.chunk_size))
        for name in im.names():
            sums = im.sums[name].astype(np.float32)
            counts = im.counts[name].astype(np.float32).reshape(-1, 1)
            w.add_tensor(f"{name}.in_sum2", sums)
            w.add_tensor(f"{name}.counts", counts)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted while writing the importance matrix; nothing written"
        ) from None
    except OSError as err:
        raise ImatrixError(f"writing {path} failed: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load(path: str | Path) -> Imatrix:
    """Read a GGUF imatrix file (ours or llama.cpp's)."""
    import gguf

    path = Path(path).expanduser()
    if not path.is_file():
        raise ImatrixError(f"importance matrix file not found: {path}")
    try:
        r = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as err:
        raise ImatrixError(f"{path} is not a GGUF importance matrix ({err})") from None
    im = Imatrix()
    f = r.fields.get("imatrix.datasets")
    if f is not None:
        im.datasets = [bytes(f.parts[i]).decode("utf-8", "replace") for i in f.data]
    for key in ("chunk_count", "chunk_size"):
        f = r.fields.get(f"imatrix.{key}")
        if f is not None:
            setattr(im, key, int(f.parts[f.data[0]][0]))
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for t in r.tensors:
        if t.name.endswith(".in_sum2"):
            sums[t.name[: -len(".in_sum2")]] = np.asarray(t.data, np.float64).reshape(
                -1, int(t.shape[0])
            )
        elif t.name.endswith(".counts"):
            counts[t.name[: -len(".counts")]] = np.rint(np.asarray(t.data).reshape(-1)).astype(
                np.int64
            )
    if not sums:
        raise ImatrixError(f"{path} holds no importance matrix (.in_sum2 tensors)")
    for name, s in sums.items():
        c = counts.get(name)
        if c is None or s.shape[0] != c.shape[0]:
            raise ImatrixError(f"{path}: sums and counts of {name} do not match")
        im.sums[name] = s
        im.counts[name] = c
    return im


class QuantizerRecords:
    """``llama_model_imatrix_data`` records for the quantizer (kept alive by this object)."""

    def __init__(self, im: Imatrix) -> None:
        import llama_cpp

        names = im.names()
        self._keep: list[Any] = []
        arr = (llama_cpp.llama_model_imatrix_data * (len(names) + 1))()
        for i, name in enumerate(names):
            values = np.ascontiguousarray(im.mean_sq(name).reshape(-1), dtype=np.float32)
            b = name.encode()
            self._keep += [b, values]
            arr[i].name = b
            arr[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = values.size
        arr[len(names)].name = None  # terminator
        self._keep.append(arr)
        self.pointer = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        self.count = len(names)
