"""Quantization types, the default per-tensor recipe, and llama.cpp's quantizer.

F32/F16/BF16/Q8_0 are written directly by our writer. Every other type is made
by llama.cpp itself (``llama_model_quantize`` through llama-cpp-python) from an
intermediate 16-bit GGUF, with per-tensor overrides passed as ``tt_overrides``
(regex → ggml type, first match wins, the same mechanism as ``llama-quantize
--tensor-type``).
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from contextlib import suppress
from dataclasses import dataclass

from tmax_local.errors import ConversionError


@dataclass(frozen=True)
class QuantType:
    name: str
    ftype: int  # llama_ftype
    bpw: float  # nominal bits per weight of the mix (llama.cpp's figures), for size estimates
    direct: bool  # written by our own writer (no llama.cpp quantizer)
    note: str = ""
    needs_imatrix: bool = False  # llama.cpp refuses it without an importance matrix


# The low-bit types at the end need an importance matrix (``--imatrix FILE|auto``): llama.cpp
# refuses to write them without one (IQ1_*, IQ2_*, IQ3_XXS, IQ3_XS, Q2_K_S).
QUANT_TYPES: dict[str, QuantType] = {
    q.name: q
    for q in (
        QuantType("F32", 0, 32.0, True, "full precision, for checks"),
        QuantType("F16", 1, 16.0, True),
        QuantType("BF16", 32, 16.0, True),
        QuantType("Q8_0", 7, 8.5, True, "near-lossless"),
        QuantType("Q6_K", 18, 6.56, False),
        QuantType("Q5_K_M", 17, 5.70, False),
        QuantType("Q5_K_S", 16, 5.54, False),
        QuantType("Q5_1", 9, 5.65, False),
        QuantType("Q5_0", 8, 5.21, False),
        QuantType("Q4_K_M", 15, 4.89, False, "default: best size/quality balance"),
        QuantType("Q4_K_S", 14, 4.58, False),
        QuantType("Q4_1", 3, 4.78, False),
        QuantType("Q4_0", 2, 4.34, False),
        QuantType("IQ4_NL", 25, 4.50, False),
        QuantType("IQ4_XS", 30, 4.25, False),
        QuantType("Q3_K_L", 13, 4.27, False),
        QuantType("Q3_K_M", 12, 3.91, False),
        QuantType("Q3_K_S", 11, 3.50, False),
        QuantType("IQ3_M", 27, 3.66, False),
        QuantType("IQ3_S", 26, 3.44, False),
        QuantType("Q2_K", 10, 3.00, False, "low quality"),
        QuantType("Q2_K_S", 21, 2.96, False, "low quality", needs_imatrix=True),
        QuantType("IQ3_XS", 22, 3.30, False, needs_imatrix=True),
        QuantType("IQ3_XXS", 23, 3.06, False, needs_imatrix=True),
        QuantType("IQ2_M", 29, 2.70, False, "very low quality", needs_imatrix=True),
        QuantType("IQ2_S", 28, 2.50, False, "very low quality", needs_imatrix=True),
        QuantType("IQ2_XS", 20, 2.31, False, "very low quality", needs_imatrix=True),
        QuantType("IQ2_XXS", 19, 2.06, False, "very low quality", needs_imatrix=True),
        QuantType("IQ1_M", 31, 1.75, False, "extremely low quality", needs_imatrix=True),
        QuantType("IQ1_S", 24, 1.56, False, "extremely low quality", needs_imatrix=True),
    )
}

DEFAULT_QUANT = "Q4_K_M"

# ggml_type values (same numbering as gguf.GGMLQuantizationType) allowed in --tensor-type
GGML_TYPES: dict[str, int] = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q5_0": 6,
    "Q5_1": 7,
    "Q8_0": 8,
    "Q2_K": 10,
    "Q3_K": 11,
    "Q4_K": 12,
    "Q5_K": 13,
    "Q6_K": 14,
    "IQ2_XXS": 16,
    "IQ2_XS": 17,
    "IQ3_XXS": 18,
    "IQ1_S": 19,
    "IQ4_NL": 20,
    "IQ3_S": 21,
    "IQ2_S": 22,
    "IQ4_XS": 23,
    "IQ1_M": 29,
    "BF16": 30,
}
DIRECT_TYPES = ("F32", "F16", "BF16", "Q8_0")

# Default recipe for llama.cpp-quantized files, on top of llama.cpp's own mixes (which already
# give the linear-attention attn_qkv the extra bits of attn_v and the tied embedding / output
# Q6_K). Our additions, judged for this hybrid architecture:
# * token_embd / output: Q8_0. With tied embeddings the same matrix is the output head, the
#   most quantization-sensitive tensor of a small model; it is written as Q8_0 straight into the
#   intermediate file, which also keeps the quantizer's memory low (no 1 GB 16-bit table).
# * ssm_alpha / ssm_beta: Q8_0. They produce the per-head decay and write strength of the
#   Gated DeltaNet state; their errors compound through the recurrence, and they are tiny.
DEFAULT_RECIPE: tuple[tuple[str, str], ...] = (
    (r"^(token_embd|output)\.weight$", "Q8_0"),
    (r"\.ssm_(alpha|beta)\.weight$", "Q8_0"),
)


def parse_quant(name: str) -> QuantType:
    q = QUANT_TYPES.get(name.upper())
    if q is None:
        known = ", ".join(QUANT_TYPES)
        raise ConversionError(f"unknown quantization type {name!r} (choose one of: {known})")
    return q


def parse_tensor_types(specs: list[str] | None) -> list[tuple[str, str]]:
    """``PATTERN=TYPE`` strings → [(regex, TYPE)], validated."""
    out: list[tuple[str, str]] = []
    for spec in specs or []:
        pattern, sep, tname = spec.rpartition("=")
        if not sep or not pattern or not tname:
            raise ConversionError(f"--tensor-type expects PATTERN=TYPE, got {spec!r}")
        tname = tname.upper()
        if tname not in GGML_TYPES:
            raise ConversionError(
                f"--tensor-type {spec!r}: unknown tensor type {tname!r} "
                f"(one of: {', '.join(GGML_TYPES)})"
            )
        try:
            re.compile(pattern)
        except re.error as err:
            raise ConversionError(f"--tensor-type {spec!r}: invalid pattern ({err})") from None
        out.append((pattern, tname))
    return out


def match_override(name: str, overrides: list[tuple[str, str]]) -> str | None:
    for pattern, tname in overrides:
        if re.search(pattern, name):
            return tname
    return None


def run_llama_quantize(
    src: str,
    dst: str,
    quant: QuantType,
    overrides: list[tuple[str, str]],
    nthread: int | None = None,
    max_buf_size: int = 256 * 1024 * 1024,
    progress: bool = False,
    imatrix: object | None = None,
) -> None:
    """Quantize ``src`` → ``dst`` with llama.cpp. ``overrides`` are tried in order.
    ``imatrix``: an ``imatrix.Imatrix`` weighting the rounding (needed by the low-bit types)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quant.ftype
    params.nthread = nthread or (os.cpu_count() or 1)
    params.allow_requantize = False
    if hasattr(params, "max_buf_size"):
        params.max_buf_size = max_buf_size  # bounds the quantizer's working buffers
    keep: list[object] = []
    if overrides:
        arr = (llama_cpp.llama_model_tensor_override * (len(overrides) + 1))()
        for i, (pattern, tname) in enumerate(overrides):
            b = pattern.encode()
            keep.append(b)
            arr[i].pattern = b
            arr[i].type = GGML_TYPES[tname]
        arr[len(overrides)].pattern = None
        keep.append(arr)
        params.tt_overrides = ctypes.cast(
            arr, ctypes.POINTER(llama_cpp.llama_model_tensor_override)
        )
    if imatrix is not None:
        from tmax_local.convert.imatrix import QuantizerRecords

        records = QuantizerRecords(imatrix)  # type: ignore[arg-type]
        keep.append(records)
        params.imatrix = records.pointer
    elif quant.needs_imatrix:
        raise ConversionError(
            f"{quant.name} needs an importance matrix: add --imatrix auto (computed from "
            "tmax-2b's trajectories) or --imatrix FILE"
        )
    state = _QuantRun()

    def work() -> None:  # keeps params / override arrays alive through its closure
        state.rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
        del keep[:]
        if state.abandoned.is_set():  # Ctrl-C came first: drop whatever was written
            with suppress(FileNotFoundError):
                os.unlink(dst)
            import llama_cpp._logger as lcl

            llama_cpp.llama_log_set(lcl.llama_log_callback, ctypes.c_void_p(0))

    callback = _make_log_callback(state, progress, quant.name)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    # The C call cannot be interrupted, so it runs in a worker thread while this (main) thread
    # waits in short, interruptible joins: Ctrl-C returns at once, and the abandoned worker
    # deletes its output when it ends (the CLI process simply exits).
    worker = threading.Thread(target=work, name="llama-quantize", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except BaseException:
        state.abandoned.set()
        raise
    finally:
        if state.bar is not None:
            state.bar.close()
        if not worker.is_alive():
            import llama_cpp._logger as lcl

            llama_cpp.llama_log_set(lcl.llama_log_callback, ctypes.c_void_p(0))
    if state.rc != 0:
        detail = " ".join(" ".join(state.errors).split())[:300]
        raise ConversionError(
            f"llama.cpp quantizer failed for {quant.name}"
            + (f": {detail}" if detail else f" (code {state.rc})")
        )


class _QuantRun:
    def __init__(self) -> None:
        self.rc: int | None = None
        self.errors: list[str] = []
        self.abandoned = threading.Event()
        self.bar = None


# ctypes callbacks must outlive every call llama.cpp may make into them
_LIVE_CALLBACKS: list[object] = []


_PROGRESS_LINE = re.compile(rb"^\[\s*(\d+)/\s*(\d+)\]")


def _make_log_callback(state: _QuantRun, progress: bool, label: str):
    """llama.cpp log while quantizing: per-tensor lines drive a progress bar, errors are
    collected, the rest is dropped (and everything once the run is abandoned)."""
    import llama_cpp

    if progress:
        from tqdm import tqdm

        state.bar = tqdm(unit="tensor", desc=f"Quantizing {label}", leave=False)

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if state.abandoned.is_set():
            return
        m = _PROGRESS_LINE.match(text)
        if m and state.bar is not None:
            state.bar.total = int(m.group(2))
            state.bar.update(int(m.group(1)) - state.bar.n)
        elif level == 3:  # GGML_LOG_LEVEL_ERROR
            state.errors.append(text.decode("utf-8", "replace"))

    _LIVE_CALLBACKS.append(callback)
    del _LIVE_CALLBACKS[:-4]
    return callback
