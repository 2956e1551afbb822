"""Tokenizer → GGUF metadata (byte-level BPE, llama.cpp pre-tokenizer ``qwen35``).

Reads the checkpoint's ``tokenizer.json`` directly (no transformers needed):
base vocabulary and merges from the BPE model, added tokens with their
special flag. Rows of the (padded) embedding that no token uses become
``[PAD<id>]`` tokens of type UNUSED, as llama.cpp's converter does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tmax_local.convert.checkpoint import Checkpoint
from tmax_local.errors import ConversionError

# gguf.TokenType values
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    eos_id: int
    pad_id: int | None
    bos_id: int | None


def _looks_special(text: str) -> bool:
    return text.startswith("<|") and text.endswith("|>")


def _token_id(name: Any, ids: dict[str, int]) -> int | None:
    if isinstance(name, dict):  # {"content": "<|im_end|>", ...}
        name = name.get("content")
    if isinstance(name, str):
        return ids.get(name)
    return None


def load_vocab(ckpt: Checkpoint, n_rows: int) -> Vocab:
    try:
        data = json.loads(ckpt.tokenizer_json.read_text(encoding="utf-8"))
        model = data["model"]
        if model.get("type") != "BPE":
            raise ConversionError(
                f"tokenizer.json: expected a BPE model, got {model.get('type')!r}"
            )
        vocab: dict[str, int] = model["vocab"]
        raw_merges = model.get("merges", [])
        added = data.get("added_tokens", [])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise ConversionError(
            f"tokenizer.json in {ckpt.path} is not a valid tokenizer file"
        ) from None

    by_id: dict[int, tuple[str, int]] = {int(i): (t, NORMAL) for t, i in vocab.items()}
    for tok in added:
        content, tid = tok["content"], int(tok["id"])
        kind = CONTROL if tok.get("special") or _looks_special(content) else USER_DEFINED
        by_id[tid] = (content, kind)
    if by_id and max(by_id) >= n_rows:
        raise ConversionError(
            f"tokenizer has token id {max(by_id)} but the embedding has only {n_rows} rows"
        )
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_rows):
        text, kind = by_id.get(i, (f"[PAD{i}]", UNUSED))
        tokens.append(text)
        types.append(kind)

    merges = [m if isinstance(m, str) else " ".join(m) for m in raw_merges]

    ids = {t: i for i, t in enumerate(tokens)}
    cfg = ckpt.tokenizer_config
    gen_eos = ckpt.text.get("eos_token_id", ckpt.config.get("eos_token_id"))
    eos: object = _token_id(cfg.get("eos_token"), ids)
    if eos is None:
        eos = gen_eos[0] if isinstance(gen_eos, list) and gen_eos else gen_eos
    if eos is None:
        eos = ids.get("<|im_end|>")
    if not isinstance(eos, int):
        raise ConversionError(
            "cannot determine the end-of-sequence token (tokenizer_config.json eos_token)"
        )
    pad = _token_id(cfg.get("pad_token"), ids)
    if pad is None:
        pad = ids.get("<|endoftext|>")
    bos = _token_id(cfg.get("bos_token"), ids)
    return Vocab(tokens, types, merges, eos, pad, bos)


def write_vocab(writer, vocab: Vocab, chat_template: str | None) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen35")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    writer.add_eos_token_id(vocab.eos_id)
    if vocab.pad_id is not None:
        writer.add_pad_token_id(vocab.pad_id)
    if vocab.bos_id is not None:
        writer.add_bos_token_id(vocab.bos_id)
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)
