"""Qwen 3.5 (llama.cpp arch ``qwen35``): hyper-parameters, tensor plan, transforms.

Facts followed here (from llama.cpp's own converter, ``convert_hf_to_gguf.py``, and its
``src/models/qwen35.cpp`` loader; the tests in ``tests/test_convert.py`` check each against
the transformers model):

* every RMSNorm weight computes x·(1+w), so +1 is baked in for all norms except
  the gated norm of linear attention (``linear_attn.norm``);
* ``A_log`` → ``-exp(A_log)`` as ``ssm_a``; ``dt_bias`` → ``ssm_dt.bias``;
  ``conv1d.weight`` [C,1,K] → [C,K];
* with more value heads than key heads, the value-head axis of the linear
  attention tensors goes from grouped order (all V heads of K head 0, then of
  K head 1, ...) to tiled order (V head 0 of every K group, then V head 1, ...),
  which is what ggml's broadcasting expects;
* vision (``model.visual.*``) and multi-token-prediction (``mtp.*``) tensors are
  dropped, and no MTP metadata is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tmax_local.convert.checkpoint import Checkpoint
from tmax_local.convert.safetensors_io import TensorRef
from tmax_local.errors import ConversionError

ARCH = "qwen35"


@dataclass(frozen=True)
class HParams:
    vocab_size: int
    hidden: int
    n_layers: int
    ffn: int
    n_head: int
    n_head_kv: int
    head_dim: int
    rms_eps: float
    rope_theta: float
    rope_dims: int
    rope_sections: tuple[int, int, int, int]
    context_length: int
    lin_k_heads: int
    lin_v_heads: int
    lin_k_dim: int
    lin_v_dim: int
    conv_kernel: int
    layer_types: tuple[str, ...]
    full_attention_interval: int
    tied: bool

    @property
    def key_dim(self) -> int:
        return self.lin_k_heads * self.lin_k_dim

    @property
    def value_dim(self) -> int:
        return self.lin_v_heads * self.lin_v_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.key_dim + self.value_dim

    @property
    def needs_v_reorder(self) -> bool:
        return self.lin_v_heads != self.lin_k_heads


def _get(text: dict[str, Any], key: str, default: Any = None) -> Any:
    if key in text and text[key] is not None:
        return text[key]
    if default is None:
        raise ConversionError(f"config.json: missing required field {key!r}")
    return default


def read_hparams(text: dict[str, Any]) -> HParams:
    try:
        n_layers = int(_get(text, "num_hidden_layers"))
        hidden = int(_get(text, "hidden_size"))
        n_head = int(_get(text, "num_attention_heads"))
        head_dim = int(text.get("head_dim") or hidden // n_head)
        rope = dict(text.get("rope_parameters") or text.get("rope_scaling") or {})
        partial = float(rope.get("partial_rotary_factor", text.get("partial_rotary_factor", 0.25)))
        theta = float(rope.get("rope_theta", text.get("rope_theta", 10_000_000.0)))
        sections = list(rope.get("mrope_section") or [11, 11, 10])
        sections = (sections + [0, 0, 0, 0])[:4]
        interval = int(text.get("full_attention_interval") or 4)
        layer_types = text.get("layer_types") or [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(n_layers)
        ]
        hp = HParams(
            vocab_size=int(_get(text, "vocab_size")),
            hidden=hidden,
            n_layers=n_layers,
            ffn=int(_get(text, "intermediate_size")),
            n_head=n_head,
            n_head_kv=int(_get(text, "num_key_value_heads")),
            head_dim=head_dim,
            rms_eps=float(text.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_dims=int(head_dim * partial),
            rope_sections=tuple(int(s) for s in sections),  # type: ignore[arg-type]
            context_length=int(text.get("max_position_embeddings") or 262144),
            lin_k_heads=int(_get(text, "linear_num_key_heads")),
            lin_v_heads=int(_get(text, "linear_num_value_heads")),
            lin_k_dim=int(_get(text, "linear_key_head_dim")),
            lin_v_dim=int(_get(text, "linear_value_head_dim")),
            conv_kernel=int(text.get("linear_conv_kernel_dim") or 4),
            layer_types=tuple(str(t) for t in layer_types),
            full_attention_interval=interval,
            tied=bool(text.get("tie_word_embeddings", False)),
        )
    except (TypeError, ValueError) as err:
        raise ConversionError(f"config.json: invalid hyper-parameter ({err})") from None
    if len(hp.layer_types) != hp.n_layers:
        raise ConversionError(
            f"config.json: layer_types has {len(hp.layer_types)} entries for {hp.n_layers} layers"
        )
    bad = set(hp.layer_types) - {"full_attention", "linear_attention"}
    if bad:
        raise ConversionError(f"config.json: unknown layer type {min(bad)!r}")
    if hp.lin_v_heads % hp.lin_k_heads:
        raise ConversionError(
            "config.json: linear_num_value_heads must be a multiple of linear_num_key_heads"
        )
    return hp


def write_metadata(writer, hp: HParams) -> None:
    """All ``qwen35.*`` keys the llama.cpp loader reads."""
    writer.add_block_count(hp.n_layers)
    writer.add_context_length(hp.context_length)
    writer.add_embedding_length(hp.hidden)
    writer.add_feed_forward_length(hp.ffn)
    writer.add_head_count(hp.n_head)
    writer.add_head_count_kv(hp.n_head_kv)
    writer.add_key_length(hp.head_dim)
    writer.add_value_length(hp.head_dim)
    writer.add_rope_freq_base(hp.rope_theta)
    writer.add_rope_dimension_count(hp.rope_dims)
    writer.add_rope_dimension_sections(list(hp.rope_sections))
    writer.add_layer_norm_rms_eps(hp.rms_eps)
    writer.add_ssm_conv_kernel(hp.conv_kernel)
    writer.add_ssm_state_size(hp.lin_k_dim)
    writer.add_ssm_group_count(hp.lin_k_heads)
    writer.add_ssm_time_step_rank(hp.lin_v_heads)
    writer.add_ssm_inner_size(hp.value_dim)
    writer.add_full_attention_interval(hp.full_attention_interval)
    # Per-layer kinds: the loader derives them from the interval when this key is absent
    # (PyPI gguf 0.19 has no helper for it), so write it by name.
    writer.add_array(
        f"{ARCH}.attention.recurrent_layers", [t == "linear_attention" for t in hp.layer_types]
    )


# ---------------------------------------------------------------------------
# tensor plan

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass
class PlannedTensor:
    """One output tensor: where its data comes from and what to do with it."""

    name: str  # GGUF name
    src: TensorRef
    shape: tuple[int, ...]  # output shape, numpy (row-major) order
    transform: Transform | None  # None: rows pass through unchanged (streamable)
    keep_f32: bool  # norms, 1-D tensors, conv kernels, ssm_a

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


def _reorder_v(x: np.ndarray, axis: int, n_k: int, per_k: int, head: int) -> np.ndarray:
    """Grouped-by-K-head → tiled order along ``axis`` (length n_k*per_k*head)."""
    axis %= x.ndim
    shape = x.shape
    y = x.reshape(shape[:axis] + (n_k, per_k, head) + shape[axis + 1 :])
    y = np.swapaxes(y, axis, axis + 1)
    return np.ascontiguousarray(y).reshape(shape)


_DROP = (re.compile(r"^(model\.)?visual\."), re.compile(r"^(model\.)?mtp\."), re.compile(r"^mtp\."))


def _strip(name: str, arch: str) -> str | None:
    """Original name → causal-LM-relative name (``layers.0.…``), or None to drop."""
    if any(p.match(name) for p in _DROP):
        return None
    if name == "lm_head.weight":
        return name
    if arch == "Qwen3_5ForConditionalGeneration":
        if name.startswith("model.language_model."):
            return name[len("model.language_model.") :]
        return None  # anything else of the multimodal wrapper is not text-model weight
    if name.startswith("model."):
        return name[len("model.") :]
    return None


def expected_shapes(hp: HParams) -> dict[str, tuple[int, ...]]:
    """Every tensor the text model needs (causal-relative names) with its HF shape."""
    H = hp.hidden
    want: dict[str, tuple[int, ...]] = {
        "embed_tokens.weight": (hp.vocab_size, H),
        "norm.weight": (H,),
    }
    if not hp.tied:
        want["lm_head.weight"] = (hp.vocab_size, H)
    for i, kind in enumerate(hp.layer_types):
        p = f"layers.{i}."
        want[p + "input_layernorm.weight"] = (H,)
        want[p + "post_attention_layernorm.weight"] = (H,)
        want[p + "mlp.gate_proj.weight"] = (hp.ffn, H)
        want[p + "mlp.up_proj.weight"] = (hp.ffn, H)
        want[p + "mlp.down_proj.weight"] = (H, hp.ffn)
        if kind == "full_attention":
            a = p + "self_attn."
            want[a + "q_proj.weight"] = (hp.n_head * hp.head_dim * 2, H)
            want[a + "k_proj.weight"] = (hp.n_head_kv * hp.head_dim, H)
            want[a + "v_proj.weight"] = (hp.n_head_kv * hp.head_dim, H)
            want[a + "o_proj.weight"] = (H, hp.n_head * hp.head_dim)
            want[a + "q_norm.weight"] = (hp.head_dim,)
            want[a + "k_norm.weight"] = (hp.head_dim,)
        else:
            a = p + "linear_attn."
            want[a + "in_proj_qkv.weight"] = (hp.conv_dim, H)
            want[a + "in_proj_z.weight"] = (hp.value_dim, H)
            want[a + "in_proj_b.weight"] = (hp.lin_v_heads, H)
            want[a + "in_proj_a.weight"] = (hp.lin_v_heads, H)
            want[a + "A_log"] = (hp.lin_v_heads,)
            want[a + "dt_bias"] = (hp.lin_v_heads,)
            want[a + "conv1d.weight"] = (hp.conv_dim, 1, hp.conv_kernel)
            want[a + "norm.weight"] = (hp.lin_v_dim,)
            want[a + "out_proj.weight"] = (H, hp.value_dim)
    return want


_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "linear_attn.in_proj_qkv.weight": "attn_qkv.weight",
    "linear_attn.in_proj_z.weight": "attn_gate.weight",
    "linear_attn.in_proj_b.weight": "ssm_beta.weight",
    "linear_attn.in_proj_a.weight": "ssm_alpha.weight",
    "linear_attn.A_log": "ssm_a",
    "linear_attn.dt_bias": "ssm_dt.bias",
    "linear_attn.conv1d.weight": "ssm_conv1d.weight",
    "linear_attn.norm.weight": "ssm_norm.weight",
    "linear_attn.out_proj.weight": "ssm_out.weight",
}

_PLUS_ONE = (
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
    "q_norm.weight",
    "k_norm.weight",
)


def _transform_for(rel: str, hp: HParams, reorder: bool) -> Transform | None:
    """The transform for one tensor (causal-relative name) or None for pass-through."""
    steps: list[Transform] = []
    nk, per_k = hp.lin_k_heads, hp.lin_v_heads // hp.lin_k_heads
    kd = 2 * hp.key_dim
    if reorder and hp.needs_v_reorder and ".linear_attn." in rel:
        if rel.endswith(("in_proj_qkv.weight", "conv1d.weight")):
            steps.append(
                lambda x: np.concatenate(
                    [x[:kd], _reorder_v(x[kd:], 0, nk, per_k, hp.lin_v_dim)], axis=0
                )
            )
        elif rel.endswith("in_proj_z.weight"):
            steps.append(lambda x: _reorder_v(x, 0, nk, per_k, hp.lin_v_dim))
        elif rel.endswith(("in_proj_a.weight", "in_proj_b.weight", "A_log", "dt_bias")):
            steps.append(lambda x: _reorder_v(x, 0, nk, per_k, 1))
        elif rel.endswith("out_proj.weight"):
            steps.append(lambda x: _reorder_v(x, 1, nk, per_k, hp.lin_v_dim))
    if rel == "norm.weight" or rel.endswith(_PLUS_ONE):
        steps.append(lambda x: x + np.float32(1.0))
    elif rel.endswith("linear_attn.A_log"):
        steps.append(lambda x: -np.exp(x))
    elif rel.endswith("linear_attn.conv1d.weight"):
        steps.append(lambda x: x.reshape(x.shape[0], x.shape[-1]))
    if not steps:
        return None

    def run(x: np.ndarray) -> np.ndarray:
        for s in steps:
            x = s(x)
        return np.ascontiguousarray(x, dtype=np.float32)

    return run


def gguf_name(rel: str) -> str:
    if rel == "embed_tokens.weight":
        return "token_embd.weight"
    if rel == "norm.weight":
        return "output_norm.weight"
    if rel == "lm_head.weight":
        return "output.weight"
    m = re.match(r"layers\.(\d+)\.(.+)$", rel)
    if not m or m.group(2) not in _LAYER_MAP:
        raise ConversionError(f"unexpected tensor {rel!r}")
    return f"blk.{m.group(1)}.{_LAYER_MAP[m.group(2)]}"


def plan_tensors(
    ckpt: Checkpoint, hp: HParams, *, reorder_v_heads: bool = True
) -> list[PlannedTensor]:
    """Map, validate and order every output tensor. Raises on missing / mis-shaped tensors.

    ``reorder_v_heads=False`` exists only so tests can prove the reordering matters.
    """
    rel_refs: dict[str, TensorRef] = {}
    for name, ref in ckpt.tensors.items():
        rel = _strip(name, ckpt.architecture)
        if rel is not None:
            rel_refs[rel] = ref
    want = expected_shapes(hp)
    missing = [n for n in want if n not in rel_refs]
    if missing:
        raise ConversionError(
            f"checkpoint is missing tensor {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    plan: list[PlannedTensor] = []
    for rel, shape in want.items():
        ref = rel_refs[rel]
        if tuple(ref.shape) != shape:
            raise ConversionError(
                f"tensor {ref.name!r} has shape {list(ref.shape)}, "
                f"expected {list(shape)} from config.json"
            )
        out_shape = (shape[0], shape[2]) if rel.endswith("conv1d.weight") else shape
        name = gguf_name(rel)
        keep_f32 = len(out_shape) == 1 or name.endswith(
            ("_norm.weight", "ssm_conv1d.weight", "ssm_a")
        )
        plan.append(
            PlannedTensor(name, ref, out_shape, _transform_for(rel, hp, reorder_v_heads), keep_f32)
        )
    return plan
