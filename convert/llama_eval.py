"""Teacher-forced evaluation of a GGUF on llama.cpp through llama-cpp-python's C API.

Shared by the importance-matrix collector (which watches every matrix multiplication
through the graph evaluation callback) and the quality check (which reads the logits).
Each chunk of tokens is evaluated from a fresh state (KV cache and recurrent state cleared),
in batches of ``n_batch`` tokens that all request outputs, as ``llama-imatrix`` and
``llama-perplexity`` do.

The ggml tensor layout used by the callback comes from ggml.h (``struct ggml_tensor``) of
the llama.cpp vendored in llama-cpp-python 0.3.36; the op numbers are looked up by name at
run time (``ggml_op_name``), not hard-coded.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from tmax_local.errors import TmaxError

GGML_MAX_DIMS = 4
GGML_MAX_OP_PARAMS = 64
GGML_MAX_SRC = 10
GGML_MAX_NAME = 64
GGML_TYPE_F32 = 0


class EvalError(TmaxError):
    title = "Evaluation failed"


class GGMLTensor(ctypes.Structure):
    """``struct ggml_tensor`` (ggml.h); only read, never allocated from Python."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


class _GGML:
    """The few ggml functions the callback needs, from the libraries llama-cpp-python ships."""

    def __init__(self) -> None:
        import llama_cpp._ggml as g

        lib = g.libggml
        lib.ggml_op_name.argtypes = [ctypes.c_int]
        lib.ggml_op_name.restype = ctypes.c_char_p
        lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
        lib.ggml_nbytes.restype = ctypes.c_size_t
        lib.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_buffer_is_host.restype = ctypes.c_bool
        lib.ggml_backend_tensor_get.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_size_t,
        ]
        lib.ggml_backend_tensor_get.restype = None
        self.lib = lib
        ops: dict[str, int] = {}
        for i in range(200):
            name = lib.ggml_op_name(i)
            if name is None:
                break
            ops[name.decode()] = i
            if name == b"COUNT" or len(ops) > 150:
                break
        self.MUL_MAT = ops.get("MUL_MAT", -1)
        self.MUL_MAT_ID = ops.get("MUL_MAT_ID", -1)
        if self.MUL_MAT < 0:
            raise EvalError("this llama.cpp build does not name its MUL_MAT op")

    def tensor_f32(self, t: GGMLTensor, ptr: int) -> np.ndarray:
        """A float32 tensor's values as a (ne3, ne2, ne1, ne0) array (copied)."""
        ne = tuple(int(x) for x in t.ne)
        nb = tuple(int(x) for x in t.nb)
        nbytes = int(self.lib.ggml_nbytes(ptr))
        if t.buffer and self.lib.ggml_backend_buffer_is_host(t.buffer) and t.data:
            raw = (ctypes.c_char * nbytes).from_address(t.data)
            buf = np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8)
        else:
            buf = np.empty(nbytes, dtype=np.uint8)
            self.lib.ggml_backend_tensor_get(ptr, buf.ctypes.data, 0, nbytes)
        view = np.lib.stride_tricks.as_strided(
            buf.view(np.float32) if nb[0] == 4 and nbytes % 4 == 0 else buf,
            shape=(ne[3], ne[2], ne[1], ne[0]),
            strides=(nb[3], nb[2], nb[1], nb[0]),
        )
        return np.array(view, dtype=np.float32)


_GGML_SINGLETON: _GGML | None = None


def ggml() -> _GGML:
    global _GGML_SINGLETON
    if _GGML_SINGLETON is None:
        _GGML_SINGLETON = _GGML()
    return _GGML_SINGLETON


# A callback sees (tensor address, ask) and returns whether it wants the data (ask=True) or
# whether computation may go on (ask=False).
EvalCallback = Callable[[int, bool], bool]


def _quiet_logs() -> None:
    """llama.cpp's loader chatter off (errors still reach stderr)."""
    import llama_cpp._logger as lcl

    lcl.set_verbose(False)


class Evaluator:
    """One GGUF model + context. ``eval_chunk`` runs a token list from a fresh state and
    yields, per batch, the logits of every position (``[n, vocab]`` float32)."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 512,
        n_batch: int = 128,
        threads: int | None = None,
        kv_f32: bool = False,
        callback: EvalCallback | None = None,
        gpu_layers: int = 0,
    ) -> None:
        import llama_cpp

        self._lc = llama_cpp
        self.path = Path(path)
        if not self.path.is_file():
            raise EvalError(f"model file not found: {self.path}")
        _quiet_logs()
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = gpu_layers
        self.model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self.model:
            raise EvalError(f"llama.cpp could not load {self.path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_batch = max(1, min(n_batch, n_ctx))
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = 1
        nthreads = threads or max(1, min(4, os.cpu_count() or 1))
        cparams.n_threads = nthreads
        cparams.n_threads_batch = nthreads
        cparams.no_perf = True
        if kv_f32:  # exact checks: F32 cache, and no flash attention (it rounds through F16)
            cparams.type_k = GGML_TYPE_F32
            cparams.type_v = GGML_TYPE_F32
            cparams.flash_attn_type = 0
        self._cb: Any = None
        if callback is not None:
            user_cb = callback

            @llama_cpp.ggml_backend_sched_eval_callback
            def cb(t: int, ask: bool, user_data: ctypes.c_void_p) -> bool:
                return bool(user_cb(t, ask))

            self._cb = cb
            cparams.cb_eval = cb
            cparams.cb_eval_user_data = None
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            self.model = None
            raise EvalError(f"llama.cpp could not create a context for {self.path}")
        self.n_ctx = n_ctx
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    # -- tokens -------------------------------------------------------------------------
    def tokenize(self, text: str, *, special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (self._lc.llama_token * cap)()
        n = self._lc.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        if n < 0:
            cap = -n
            buf = (self._lc.llama_token * cap)()
            n = self._lc.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        return list(buf[:n])

    # -- evaluation ---------------------------------------------------------------------
    def reset(self) -> None:
        mem = self._lc.llama_get_memory(self.ctx)
        self._lc.llama_memory_clear(mem, True)

    def decode(self, tokens: Sequence[int], start_pos: int, *, logits: bool = True) -> None:
        b = self.batch
        n = len(tokens)
        b.n_tokens = n
        for i, tok in enumerate(tokens):
            b.token[i] = int(tok)
            b.pos[i] = start_pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if logits else 0
        if not logits and n:
            b.logits[n - 1] = 1
        rc = self._lc.llama_decode(self.ctx, b)
        if rc != 0:
            raise EvalError(f"llama.cpp decode failed (code {rc})")

    def logits(self, n: int) -> np.ndarray:
        ptr = self._lc.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n, self.n_vocab))

    def eval_chunk(self, tokens: Sequence[int], *, logits: bool = True) -> Iterator[np.ndarray]:
        """Fresh state, then ``tokens`` in batches; yields each batch's logits (a view valid
        until the next batch) — or an empty array when ``logits`` is False (all positions
        still produce outputs, so every layer runs on every token)."""
        if len(tokens) > self.n_ctx:
            raise EvalError(f"chunk of {len(tokens)} tokens exceeds the context ({self.n_ctx})")
        self.reset()
        for start in range(0, len(tokens), self.n_batch):
            part = tokens[start : start + self.n_batch]
            self.decode(part, start)
            yield self.logits(len(part)) if logits else np.empty((0, 0), np.float32)

    def close(self) -> None:
        lc = self._lc
        if getattr(self, "batch", None) is not None:
            lc.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ctx", None):
            lc.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            lc.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
