"""How much memory a model needs at a context length, and what fits this machine.

One computation shared by `tmax-local doctor`, `run` and the app (defaults and the warning
before loading a model that will not fit). The estimate is built from the model's real sizes,
read from its GGUF header (`ModelFacts.from_gguf`):

    resident ≈ weights + kv_per_token × n_ctx + recurrent + compute + base

- ``weights``: the GGUF's tensor data (memory-mapped; all of it is touched by inference);
- ``kv_per_token``: only the full-attention layers (qwen35: every
  ``full_attention_interval``-th) keep a KV cache:
  ``n_attn_layers × n_head_kv × (key_length × bytes(type_k) + value_length × bytes(type_v))``,
  bytes per element: f32 4, f16/bf16 2, q8_0 34/32, q5_1 24/32, q5_0 22/32, q4_1 20/32,
  q4_0 18/32;
- ``recurrent``: the linear-attention layers' state, f32, independent of the context:
  ``n_linear_layers × 4 × ((conv_kernel − 1) × (inner + 2 × groups × state) + v_heads ×
  state × inner / v_heads)``;
- ``compute``: llama.cpp's graph buffer, sized for a micro-batch of ``n_ubatch`` tokens whose
  outputs include the logits: ``4 × n_ubatch × (n_vocab + n_embd × 4 + n_ff × 2)``, plus
  (without flash attention) the attention scores ``4 × n_ubatch × n_ctx × n_head``;
- ``base``: the process around llama.cpp's buffers (Python, llama-cpp-python's token and
  logits arrays, the tokenizer): ``BASE_BYTES``, 320 MiB — bench_memory measured 298–341 MiB
  (peak RSS minus llama.cpp's reported buffers, 2B Q4_K_M, 8k–64k).

`bench/bench_memory.py` checks this against the measured peak RSS of the full-size 2B at
8k/32k/64k with f16 and q8_0 KV caches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tmax_local.errors import TmaxError

BASE_BYTES = 320 * 1024 * 1024
HEADROOM_FRACTION = 0.10  # keep this share of RAM free …
HEADROOM_MIN = 512 * 1024 * 1024  # … and at least this much
CONTEXT_STEPS = (65536, 32768, 16384, 8192, 4096)
MIN_CONTEXT = 4096

KV_BYTES_PER_ELEMENT = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
}

# llama.cpp's `general.file_type` values (enum llama_ftype) → names.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 30: "IQ4_XS", 32: "BF16",
}  # fmt: skip


class ModelFileError(TmaxError):
    title = "Unreadable model"


@dataclass(frozen=True)
class ModelFacts:
    """What the memory estimate needs, as read from a GGUF header."""

    path: Path | None
    architecture: str
    quant: str
    weights_bytes: int  # tensor data
    file_bytes: int
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    n_vocab: int
    full_attention_interval: int = 1  # 1: every layer has attention (no recurrent layers)
    ssm_conv_kernel: int = 0
    ssm_state_size: int = 0
    ssm_group_count: int = 0
    ssm_inner_size: int = 0
    ssm_v_heads: int = 0
    context_length: int = 0  # trained context
    name: str = ""

    @property
    def n_attention_layers(self) -> int:
        if self.full_attention_interval <= 1:
            return self.n_layer
        return self.n_layer // self.full_attention_interval

    @classmethod
    def from_gguf(cls, path: str | Path) -> ModelFacts:
        """Read the header (metadata and tensor table; the weights are not loaded)."""
        path = Path(path)
        try:
            from gguf import GGUFReader

            reader = GGUFReader(str(path))
        except (OSError, ValueError, IndexError, KeyError) as err:
            raise ModelFileError(f"{path} is not a readable GGUF file ({err})") from None

        def field(key: str, default: object = None) -> object:
            f = reader.get_field(key)
            if f is None:
                return default
            try:
                return f.contents()
            except (ValueError, IndexError, TypeError):
                return default

        arch = str(field("general.architecture", "unknown"))

        def a(key: str, default: int = 0) -> int:
            value = field(f"{arch}.{key}", default)
            if isinstance(value, list):  # per-layer arrays: take the largest
                value = max(value) if value else default
            return int(value)  # type: ignore[call-overload]

        weights = sum(int(t.n_bytes) for t in reader.tensors)
        tokens = reader.get_field("tokenizer.ggml.tokens")
        n_vocab = len(tokens.data) if tokens is not None else 0
        embd = a("embedding_length")
        n_head = a("attention.head_count")
        head_dim = embd // n_head if n_head else 0
        ftype = field("general.file_type")
        return cls(
            path=path,
            architecture=arch,
            quant=FILE_TYPES.get(int(ftype), str(ftype)) if ftype is not None else "?",  # type: ignore[call-overload]
            weights_bytes=weights,
            file_bytes=path.stat().st_size,
            n_layer=a("block_count"),
            n_embd=embd,
            n_ff=a("feed_forward_length"),
            n_head=n_head,
            n_head_kv=a("attention.head_count_kv", n_head) or n_head,
            key_length=a("attention.key_length", head_dim) or head_dim,
            value_length=a("attention.value_length", head_dim) or head_dim,
            n_vocab=n_vocab,
            full_attention_interval=a("full_attention_interval", 1) or 1,
            ssm_conv_kernel=a("ssm.conv_kernel"),
            ssm_state_size=a("ssm.state_size"),
            ssm_group_count=a("ssm.group_count"),
            ssm_inner_size=a("ssm.inner_size"),
            ssm_v_heads=a("ssm.time_step_rank"),
            context_length=a("context_length"),
            name=str(field("general.name", "") or ""),
        )


def kv_element_bytes(cache_type: str | None) -> float:
    name = (cache_type or "f16").lower()
    try:
        return KV_BYTES_PER_ELEMENT[name]
    except KeyError:
        raise TmaxError(
            f"unknown KV cache type {cache_type!r}; use one of {', '.join(KV_BYTES_PER_ELEMENT)}"
        ) from None


def kv_bytes_per_token(
    m: ModelFacts, type_k: str | None = None, type_v: str | None = None
) -> float:
    return (
        m.n_attention_layers
        * m.n_head_kv
        * (m.key_length * kv_element_bytes(type_k) + m.value_length * kv_element_bytes(type_v))
    )


def recurrent_bytes(m: ModelFacts) -> int:
    n_linear = m.n_layer - m.n_attention_layers
    if n_linear <= 0 or m.ssm_inner_size == 0:
        return 0
    conv = (m.ssm_conv_kernel - 1) * (m.ssm_inner_size + 2 * m.ssm_group_count * m.ssm_state_size)
    ssm = m.ssm_state_size * m.ssm_inner_size  # v_heads × k_dim × v_dim, k_dim = state size
    return 4 * n_linear * (conv + ssm)


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    type_k: str
    type_v: str
    weights: int
    kv: int
    recurrent: int
    compute: int
    base: int

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.recurrent + self.compute + self.base

    def as_dict(self) -> dict[str, int | str]:
        return {
            "n_ctx": self.n_ctx,
            "type_k": self.type_k,
            "type_v": self.type_v,
            "weights": self.weights,
            "kv_cache": self.kv,
            "recurrent_state": self.recurrent,
            "compute_buffers": self.compute,
            "base": self.base,
            "total": self.total,
        }


def estimate(
    m: ModelFacts,
    n_ctx: int,
    type_k: str | None = None,
    type_v: str | None = None,
    *,
    n_ubatch: int = 512,
    flash_attn: bool = True,
) -> MemoryEstimate:
    """Resident memory of ``m`` loaded at ``n_ctx`` (see the module docstring)."""
    compute = 4 * n_ubatch * (m.n_vocab + 4 * m.n_embd + 2 * m.n_ff)
    if not flash_attn:
        compute += 4 * n_ubatch * n_ctx * m.n_head
    return MemoryEstimate(
        n_ctx=n_ctx,
        type_k=(type_k or "f16").lower(),
        type_v=(type_v or "f16").lower(),
        weights=m.weights_bytes,
        kv=math.ceil(kv_bytes_per_token(m, type_k, type_v) * n_ctx),
        recurrent=recurrent_bytes(m),
        compute=compute,
        base=BASE_BYTES,
    )


def budget(available: int) -> int:
    """The bytes a model may use out of ``available`` (RAM left for everything else)."""
    return max(0, available - max(HEADROOM_MIN, int(available * HEADROOM_FRACTION)))


@dataclass(frozen=True)
class Choice:
    """A context length and KV-cache type for a model on this machine."""

    n_ctx: int
    type_k: str
    type_v: str
    estimate: MemoryEstimate
    fits: bool
    warning: str | None = None


def choose(
    m: ModelFacts,
    available: int,
    *,
    n_ctx: int | None = None,
    type_k: str | None = None,
    type_v: str | None = None,
    flash_attn: bool = True,
) -> Choice:
    """The defaults `run` and the app load ``m`` with: what the user asked for, and for what
    they left open the largest context (64k, 32k, … 4k; never beyond the trained context)
    with an f16 KV cache, else q8_0, that fits ``budget(available)``. When nothing fits,
    the smallest is returned with ``fits=False`` and a warning to show before loading."""
    room = budget(available)
    contexts = (
        [n_ctx]
        if n_ctx
        else [c for c in CONTEXT_STEPS if not m.context_length or c <= m.context_length]
        or [MIN_CONTEXT]
    )
    kv_options = [(type_k, type_v)] if (type_k or type_v) else [("f16", "f16"), ("q8_0", "q8_0")]
    last: MemoryEstimate | None = None
    for c in contexts:
        for tk, tv in kv_options:
            e = estimate(m, c, tk, tv, flash_attn=flash_attn)
            last = e
            if e.total <= room:
                return Choice(c, e.type_k, e.type_v, e, True)
    assert last is not None
    warning = (
        f"{m.path.name if m.path else 'the model'} needs about {gib(last.total)} at "
        f"{last.n_ctx} tokens of context ({last.type_k} KV cache) but about {gib(room)} of "
        f"{gib(available)} available RAM can be used: it may swap or be killed. "
        "Close other programs, pass a smaller --ctx or a smaller --quant"
    )
    return Choice(last.n_ctx, last.type_k, last.type_v, last, False, warning)


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


@dataclass(frozen=True)
class QuantAdvice:
    quant: str
    n_ctx: int
    kv: str
    weights_bytes: int
    total_bytes: int


# Preferred quants, best quality first (what a recommendation considers).
ADVISED_QUANTS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M")


def scaled(m: ModelFacts, quant: str) -> ModelFacts:
    """``m`` as it would be at another quant: weights scaled by nominal bits per weight."""
    from dataclasses import replace

    from tmax_local.convert.quants import QUANT_TYPES

    have = QUANT_TYPES.get(m.quant)
    want = QUANT_TYPES[quant]
    weights = m.weights_bytes if have is None else int(m.weights_bytes * want.bpw / have.bpw)
    return replace(m, quant=quant, weights_bytes=weights, path=None)


def recommend(m: ModelFacts, available: int) -> QuantAdvice | None:
    """The best quant, context and KV type of this model family for ``available`` RAM.

    Long context first (TMax was trained on 64k rollouts): 64k or 32k with the best quant
    down to Q4_K_M; then shorter contexts with those quants; Q3_K_M only as a last resort.
    Within each, an f16 KV cache before q8_0. None when not even the smallest fits."""
    room = budget(available)
    good = ADVISED_QUANTS[:-1]
    tiers = (
        (CONTEXT_STEPS[:2], good),
        (CONTEXT_STEPS[2:], good),
        (CONTEXT_STEPS, ADVISED_QUANTS[-1:]),
    )
    for contexts, quants in tiers:
        for ctx in contexts:
            for q in quants:
                mq = scaled(m, q)
                for kv in ("f16", "q8_0"):
                    e = estimate(mq, ctx, kv, kv)
                    if e.total <= room:
                        return QuantAdvice(q, ctx, kv, mq.weights_bytes, e.total)
    return None


def available_ram() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def plan_load(
    path: str | Path,
    *,
    n_ctx: int | None = None,
    type_k: str | None = None,
    type_v: str | None = None,
    flash_attn: bool = True,
    available: int | None = None,
) -> Choice:
    """`choose` for the GGUF at ``path`` and this machine's available RAM: what `run` and
    the app load a model with when ``--ctx`` / ``--cache-type-*`` are left to them."""
    facts = ModelFacts.from_gguf(path)
    return choose(
        facts,
        available_ram() if available is None else available,
        n_ctx=n_ctx,
        type_k=type_k,
        type_v=type_v,
        flash_attn=flash_attn,
    )
