"""How much a quantization costs: KL divergence, top-1 agreement and perplexity against a
reference, plus size and decode speed — what ``llama-perplexity --kl-divergence`` reports,
computed in-process on the llama.cpp that llama-cpp-python ships.

Both models read the same chunks of held-out text, teacher-forced (by default tmax-2b's own
held-out trajectories in the rollout format: its replies and the observations it read). Each
chunk starts from a fresh state; like llama-perplexity, only the second half of each chunk is
scored, so every scored token has at least half a chunk of context. Per scored position::

    KL    = sum_v p_ref(v) * (log p_ref(v) - log p_model(v))
    top-1 = argmax p_model == argmax p_ref
    ppl   = exp(mean(-log p(next token)))   for each model
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tmax_local.errors import Interrupted, TmaxError

DEFAULT_CHECK_CHUNKS = 16
SCORE_ROWS = 32


class CheckError(TmaxError):
    title = "Quality check"


@dataclass
class CheckResult:
    model: str
    reference: str
    tokens: int  # scored positions
    chunks: int
    chunk_size: int
    kl_mean: float
    kl_median: float
    kl_p99: float
    kl_max: float
    top1_agreement: float
    ppl: float
    ppl_reference: float
    size_bytes: int
    size_bytes_reference: int
    decode_tok_s: float | None
    decode_tok_s_reference: float | None
    datasets: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def one_line(self) -> str:
        return (
            f"{Path(self.model).name}: {_size(self.size_bytes)}, KL {self.kl_mean:.4f} "
            f"(p99 {self.kl_p99:.3f}), top-1 {100 * self.top1_agreement:.1f}%, "
            f"ppl {self.ppl:.3f} vs {self.ppl_reference:.3f} over {self.tokens} tokens"
        )


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return x


def score_positions(
    ref_logits: np.ndarray, model_logits: np.ndarray, next_tokens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per position: KL(ref || model), top-1 agreement, NLL of the model and of the ref."""
    lr = log_softmax(ref_logits)
    lm = log_softmax(model_logits)
    kl = (np.exp(lr) * (lr - lm)).sum(axis=-1)
    kl = np.maximum(kl, 0.0)  # rounding can leave tiny negatives
    agree = lr.argmax(axis=-1) == lm.argmax(axis=-1)
    idx = np.arange(len(next_tokens))
    return kl, agree, -lm[idx, next_tokens], -lr[idx, next_tokens]


def measure_decode(ev: Any, prompt: Sequence[int], n: int = 32) -> float:
    """Greedy single-token decode speed (tokens/s) after ``prompt``, fresh state."""
    ev.reset()
    ev.decode(list(prompt), 0, logits=False)
    tok = int(np.argmax(ev.logits(1)[0]))  # only the last position has an output
    pos = len(prompt)
    t0 = time.perf_counter()
    for _ in range(n):
        ev.decode([tok], pos, logits=False)
        tok = int(np.argmax(ev.logits(1)[0]))
        pos += 1
    return n / (time.perf_counter() - t0)


def check(
    model: str | Path,
    reference: str | Path,
    *,
    docs: Sequence[Any] | None = None,
    chunk_size: int = 512,
    max_chunks: int | None = DEFAULT_CHECK_CHUNKS,
    threads: int | None = None,
    n_batch: int = 128,
    decode_tokens: int = 32,
    kv_f32: bool = False,
    progress: bool = False,
) -> CheckResult:
    """Compare ``model`` with ``reference`` (both GGUF) on ``docs`` (default: tmax-2b's
    held-out trajectories)."""
    from tmax_local.convert.calibration import make_chunks, trajectory_documents
    from tmax_local.convert.llama_eval import Evaluator

    model, reference = Path(model).expanduser(), Path(reference).expanduser()
    for p in (model, reference):
        if not p.is_file():
            raise CheckError(f"model file not found: {p}")
    if docs is None:
        docs = trajectory_documents("holdout")
    datasets = sorted({d.name for d in docs}) if len(docs) <= 20 else [f"{len(docs)} documents"]
    kls: list[np.ndarray] = []
    agree = 0
    nll = nll_ref = 0.0
    n_scored = 0
    bar = None
    try:
        with (
            Evaluator(
                reference, n_ctx=chunk_size, n_batch=n_batch, threads=threads, kv_f32=kv_f32
            ) as ref,
            Evaluator(
                model, n_ctx=chunk_size, n_batch=n_batch, threads=threads, kv_f32=kv_f32
            ) as ev,
        ):
            if ref.n_vocab != ev.n_vocab:
                raise CheckError(
                    f"vocabularies differ ({ev.n_vocab} vs {ref.n_vocab} tokens): "
                    "not the same model family"
                )
            chunks = make_chunks(
                docs, lambda t, sp: ref.tokenize(t, special=sp), chunk_size, max_chunks
            )
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(chunks), unit="chunk", desc="Quality check", leave=False)
            first = chunk_size // 2
            for chunk in chunks:
                arr = np.asarray(chunk, dtype=np.int64)
                for (lr, lm), start in zip(
                    zip(ref.eval_chunk(chunk), ev.eval_chunk(chunk), strict=True),
                    range(0, len(chunk), ref.n_batch),
                    strict=True,
                ):
                    n = lr.shape[0]
                    lo = max(first - start, 0)  # positions before `first` are context only
                    hi = min(n, len(chunk) - 1 - start)  # the last position has no next token
                    if hi <= lo:
                        continue
                    for a in range(lo, hi, SCORE_ROWS):  # float64 work bounded to 32 rows
                        b = min(hi, a + SCORE_ROWS)
                        kl, ag, nl, nr = score_positions(
                            lr[a:b], lm[a:b], arr[start + a + 1 : start + b + 1]
                        )
                        kls.append(kl.astype(np.float32))
                        agree += int(ag.sum())
                        nll += float(nl.sum())
                        nll_ref += float(nr.sum())
                    n_scored += hi - lo
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
                bar = None
            speed = speed_ref = None
            if decode_tokens > 0:
                prompt = chunks[0][:16]
                speed = measure_decode(ev, prompt, decode_tokens)
                speed_ref = measure_decode(ref, prompt, decode_tokens)
    except KeyboardInterrupt:
        raise Interrupted("quality check interrupted") from None
    finally:
        if bar is not None:
            bar.close()
    if n_scored == 0:
        raise CheckError("no token was scored (the text is too short for one chunk)")
    kl_all = np.concatenate(kls)
    return CheckResult(
        model=str(model),
        reference=str(reference),
        tokens=n_scored,
        chunks=len(chunks),
        chunk_size=chunk_size,
        kl_mean=float(kl_all.mean()),
        kl_median=float(np.median(kl_all)),
        kl_p99=float(np.percentile(kl_all, 99)),
        kl_max=float(kl_all.max()),
        top1_agreement=agree / n_scored,
        ppl=float(np.exp(nll / n_scored)),
        ppl_reference=float(np.exp(nll_ref / n_scored)),
        size_bytes=model.stat().st_size,
        size_bytes_reference=reference.stat().st_size,
        decode_tok_s=speed,
        decode_tok_s_reference=speed_ref,
        datasets=datasets,
    )


def write_json(result: CheckResult, path: str | Path) -> Path:
    """Atomically write the result as JSON."""
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise CheckError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
