"""The converter, proven numerically: llama.cpp running our GGUF vs transformers' forward pass.

Tiny random Qwen 3.5 checkpoints (hybrid layers, real vocabulary) are converted and
loaded by the real llama.cpp; logits over a 64-token sequence are compared with the
transformers float32 model holding the same weights. F32 must match tightly (with an
F32 KV cache); lower precisions report their error and must stay within sane bounds.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("transformers")

SEQ_LEN = 64
K_NE_V = {"linear_k_heads": 2, "linear_v_heads": 4}  # value heads > key heads: reorder needed
K_EQ_V = {"linear_k_heads": 4, "linear_v_heads": 4}


def _token_ids() -> list[int]:
    rng = np.random.default_rng(1234)
    return rng.integers(0, 248_000, size=SEQ_LEN).tolist()


@functools.lru_cache(maxsize=8)
def _reference_logits(ckpt: Path) -> np.ndarray:
    import torch

    from tmax_local.testing.checkpoints import load_reference_model

    model = load_reference_model(ckpt)
    with torch.no_grad():
        return model(torch.tensor([_token_ids()])).logits[0].float().numpy()


def _llama_logits(gguf_path: Path) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(
        str(gguf_path),
        n_ctx=128,
        n_batch=128,
        logits_all=True,
        type_k=0,
        type_v=0,
        n_threads=2,
        verbose=False,
    )
    try:
        ids = _token_ids()
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def _errors(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    a = got - got.mean(-1, keepdims=True)
    b = ref - ref.mean(-1, keepdims=True)
    corr = float(((a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))).mean())
    return {
        "max_rel": float(np.abs(got - ref).max() / np.abs(ref).max()),
        "rms_rel": float(np.sqrt(((got - ref) ** 2).mean() / (ref**2).mean())),
        "corr": corr,
        "top1": float((got.argmax(-1) == ref.argmax(-1)).mean()),
    }


def _gguf_reader(path: Path):
    import gguf

    return gguf.GGUFReader(str(path))


def _field(reader, key: str):
    f = reader.get_field(key)
    assert f is not None, f"missing metadata {key}"
    return f.contents()


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(dict(naming="causal", **K_NE_V), id="causal-K2V4-bf16"),
        pytest.param(
            dict(naming="causal", **K_EQ_V, dtype="float16", seed=3), id="causal-K4V4-f16"
        ),
        pytest.param(
            dict(naming="conditional", vision=True, mtp=True, shards=3, **K_NE_V, seed=1),
            id="conditional-vision-mtp-sharded",
        ),
        pytest.param(
            dict(
                naming="causal",
                mtp=True,
                dtype="float32",
                untied=True,
                seed=2,
                template_file=True,
                **K_NE_V,
            ),
            id="causal-mtp-untied-f32",
        ),
    ],
)
def test_f32_conversion_matches_transformers(tiny_checkpoint, tiny_gguf, kwargs):
    ckpt = tiny_checkpoint(**kwargs)
    path = tiny_gguf("F32", **kwargs)
    err = _errors(_llama_logits(path), _reference_logits(ckpt))
    print(f"F32 {kwargs}: {err}")
    assert err["max_rel"] < 1e-4, err
    assert err["top1"] == 1.0, err

    reader = _gguf_reader(path)
    names = {t.name for t in reader.tensors}
    assert not any("nextn" in n or "visual" in n or "mtp" in n for n in names)
    assert reader.get_field("qwen35.nextn_predict_layers") is None  # no MTP metadata
    assert _field(reader, "qwen35.block_count") == 4
    assert ("output.weight" in names) == bool(kwargs.get("untied"))


def test_value_head_reordering_matters(tiny_checkpoint, tmp_path):
    """Skipping the grouped→tiled V-head reorder (K≠V) must break the logits: the F32
    check above has teeth."""
    from tmax_local.convert.api import _convert

    ckpt = tiny_checkpoint(naming="causal", **K_NE_V)
    bad = _convert(ckpt, "F32", tmp_path / "noreorder.gguf", progress=False, reorder_v_heads=False)
    err = _errors(_llama_logits(bad), _reference_logits(ckpt))
    print(f"without V reorder: {err}")
    assert err["max_rel"] > 0.2 and err["corr"] < 0.8, err


# measured on the seed-0 tiny model: F16 rms 1e-3, BF16 1e-2, Q8_0 0.06 (corr .998),
# Q4_K_M 0.40 (corr .92); a broken conversion gives corr ~0.5
BOUNDS = {
    "F16": {"rms_rel": 0.01, "corr": 0.9999, "top1": 0.95},
    "BF16": {"rms_rel": 0.05, "corr": 0.998, "top1": 0.9},
    "Q8_0": {"rms_rel": 0.15, "corr": 0.99, "top1": 0.8},
    "Q4_K_M": {"rms_rel": 0.6, "corr": 0.85, "top1": 0.4},
}


@pytest.mark.parametrize("quant", list(BOUNDS))
def test_lower_precision_within_bounds(tiny_checkpoint, tiny_gguf, quant):
    ckpt = tiny_checkpoint(naming="causal", **K_NE_V)
    path = tiny_gguf(quant, naming="causal", **K_NE_V)
    err = _errors(_llama_logits(path), _reference_logits(ckpt))
    print(f"{quant}: {err}")
    b = BOUNDS[quant]
    assert err["rms_rel"] < b["rms_rel"], err
    assert err["corr"] > b["corr"], err
    assert err["top1"] >= b["top1"], err


def test_quant_recipe_types(tiny_gguf):
    import gguf

    T = gguf.GGMLQuantizationType
    reader = _gguf_reader(tiny_gguf("Q4_K_M", naming="causal", **K_NE_V))
    types = {t.name: T(t.tensor_type) for t in reader.tensors}
    assert types["token_embd.weight"] == T.Q8_0  # tied output head kept at 8 bits
    assert types["blk.0.ssm_alpha.weight"] == T.Q8_0 and types["blk.0.ssm_beta.weight"] == T.Q8_0
    for name, t in types.items():
        if name.endswith(("_norm.weight", "ssm_conv1d.weight", "ssm_a", "ssm_dt.bias")):
            assert t == T.F32, name
    assert types["blk.1.ffn_up.weight"] == T.Q4_K
    assert {types[f"blk.{i}.ffn_down.weight"] for i in range(4)} <= {T.Q4_K, T.Q6_K}
    assert _field(reader, "general.file_type") == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M


def test_tensor_type_overrides(tiny_checkpoint, tmp_path):
    import gguf

    from tmax_local.convert import convert_checkpoint

    T = gguf.GGMLQuantizationType
    ckpt = tiny_checkpoint(naming="causal", **K_NE_V)
    out = convert_checkpoint(
        ckpt,
        "Q4_K_M",
        tmp_path / "o.gguf",
        progress=False,
        tensor_types=[r"ffn_down=Q8_0", "token_embd=Q6_K", r"attn_gate=Q5_K"],
    )
    types = {t.name: T(t.tensor_type) for t in _gguf_reader(out).tensors}
    assert all(types[f"blk.{i}.ffn_down.weight"] == T.Q8_0 for i in range(4))
    assert types["token_embd.weight"] == T.Q6_K
    assert types["blk.0.attn_gate.weight"] == T.Q5_K
    # direct types accept direct per-tensor types
    out2 = convert_checkpoint(
        ckpt, "F16", tmp_path / "f.gguf", progress=False, tensor_types=["ffn_=Q8_0"]
    )
    types2 = {t.name: T(t.tensor_type) for t in _gguf_reader(out2).tensors}
    assert types2["blk.0.ffn_gate.weight"] == T.Q8_0 and types2["blk.0.attn_qkv.weight"] == T.F16


def test_metadata(tiny_checkpoint, tiny_gguf):
    from tmax_local.testing.checkpoints import chat_template

    reader = _gguf_reader(tiny_gguf("F32", naming="causal", **K_NE_V))
    expect = {
        "general.architecture": "qwen35",
        "qwen35.context_length": 262144,
        "qwen35.embedding_length": 256,
        "qwen35.feed_forward_length": 512,
        "qwen35.attention.head_count": 2,
        "qwen35.attention.head_count_kv": 1,
        "qwen35.attention.key_length": 256,
        "qwen35.attention.value_length": 256,
        "qwen35.rope.dimension_count": 64,
        "qwen35.rope.dimension_sections": [11, 11, 10, 0],
        "qwen35.ssm.conv_kernel": 4,
        "qwen35.ssm.state_size": 64,
        "qwen35.ssm.group_count": 2,
        "qwen35.ssm.time_step_rank": 4,
        "qwen35.ssm.inner_size": 256,
        "qwen35.full_attention_interval": 4,
        "qwen35.attention.recurrent_layers": [True, True, True, False],
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen35",
        "tokenizer.ggml.eos_token_id": 248046,
        "tokenizer.ggml.padding_token_id": 248044,
    }
    for key, value in expect.items():
        assert _field(reader, key) == value, key
    assert _field(reader, "qwen35.rope.freq_base") == pytest.approx(1e7)
    assert _field(reader, "qwen35.attention.layer_norm_rms_epsilon") == pytest.approx(1e-6)
    assert _field(reader, "tokenizer.chat_template") == chat_template()
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == 248_320
    assert tokens[248046] == "<|im_end|>" and types[248046] == 3  # CONTROL
    assert tokens[248058] == "<tool_call>" and types[248058] == 4  # USER_DEFINED
    assert tokens[248320 - 1] == "[PAD248319]" and types[-1] == 5  # UNUSED
    assert len(_field(reader, "tokenizer.ggml.merges")) > 240_000
