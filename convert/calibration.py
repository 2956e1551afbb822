"""Calibration and evaluation text: tmax-2b's own agent trajectories, in the rollout format.

The package ships the 45 Terminal-Bench trajectories of allenai/tmax-2b recorded in the TMax
repository (``data/tmax2b_trajectories.jsonl.gz``; see ``data/CREDITS.txt``). Each one is
rendered as the token stream the model saw during its rollout: the system turn with the bash
tool, the task, then for every step the model's reply (its reasoning and the tool call, closed
by ``<|im_end|>``) and the observation appended in the RL framing (``tool_response_turn``) or
the format-error user message. The rendering reuses the agent's harness, so it is the exact
text the agent feeds the model.

A fixed fifth of the trajectories (every fifth by name) is held out: ``imatrix`` calibrates on
the rest, ``check`` evaluates on the held-out ones, so the quality check never scores text
the importance matrix was fitted on.

Text is cut into non-overlapping chunks of ``chunk_size`` tokens (each later evaluated from a
fresh state, as ``llama-imatrix`` and ``llama-perplexity`` do). Chunks are taken round-robin
across documents so that a limited number of chunks still covers every trajectory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from tmax_local.errors import TmaxError

DATA_FILE = "tmax2b_trajectories.jsonl.gz"
HOLDOUT_EVERY = 5  # trajectories i with i % 5 == 4 (sorted by name) are held out
DEFAULT_CHUNK_SIZE = 512


class CalibrationError(TmaxError):
    title = "Calibration text"


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    special: bool  # parse <|im_start|> and friends as special tokens (rollouts: yes)


@lru_cache(maxsize=1)
def _trajectories() -> tuple[dict[str, Any], ...]:
    raw = resources.files("tmax_local.convert").joinpath("data", DATA_FILE).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def trajectory_names() -> list[str]:
    return [t["name"] for t in _trajectories()]


def render_rollout(messages: list[dict[str, Any]]) -> str:
    """One trajectory as the append-only token stream of the agent (HARNESS §4)."""
    from tmax_local.agent import harness
    from tmax_local.agent.parser import render_tool_calls

    if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
        raise CalibrationError("a trajectory must start with a system and a user message")
    text = (
        harness.render_system_turn(messages[0]["content"])
        + harness.user_turn(messages[1]["content"])
        + harness.GENERATION_PROMPT
    )
    for m in messages[2:]:
        role = m["role"]
        if role == "assistant":
            calls = [(name, {k: str(v) for k, v in args.items()}) for name, args in m["calls"]]
            text += render_tool_calls(calls, m["content"]) + harness.IM_END
        elif role == "tool":
            text += harness.tool_response_turn(m["content"])
        elif role == "user":
            text += harness.user_message_turn(m["content"])
    # The stream ends with a generation prompt awaiting the next reply: drop it.
    text = text.removesuffix(harness.GENERATION_PROMPT)
    return text


def trajectory_documents(split: str) -> list[Document]:
    """``split``: "calibration" (imatrix), "holdout" (check) or "all"."""
    if split not in ("calibration", "holdout", "all"):
        raise ValueError(split)
    docs = []
    for i, t in enumerate(_trajectories()):
        held = i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
        if split == "all" or (split == "holdout") == held:
            docs.append(Document(t["name"], render_rollout(t["messages"]), special=True))
    return docs


def text_documents(paths: Iterable[str | Path]) -> list[Document]:
    """The user's files, plain UTF-8, tokenized as is (no special tokens)."""
    docs = []
    for p in paths:
        path = Path(p).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CalibrationError(f"text file not found: {path}") from None
        except UnicodeDecodeError as err:
            raise CalibrationError(f"{path} is not UTF-8 text ({err.reason})") from None
        except OSError as err:
            raise CalibrationError(f"cannot read {path}: {err.strerror or err}") from None
        docs.append(Document(str(path), text, special=False))
    if not docs:
        raise CalibrationError("no text files given")
    return docs


def documents_digest(docs: Sequence[Document]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.name.encode() + b"\0" + d.text.encode("utf-8") + b"\0" + bytes([d.special]))
    return h.hexdigest()


def make_chunks(
    docs: Sequence[Document],
    tokenize: Callable[[str, bool], list[int]],
    chunk_size: int,
    max_chunks: int | None = None,
) -> list[list[int]]:
    """Non-overlapping ``chunk_size``-token chunks of every document (the tail shorter than a
    chunk is dropped), interleaved round-robin across documents, at most ``max_chunks``."""
    if chunk_size < 16:
        raise CalibrationError("--chunk-size must be at least 16 tokens")
    per_doc: list[list[list[int]]] = []
    # With a chunk limit only the first ``depth`` chunks of each document can be used: tokenize
    # a prefix long enough for them (a token takes at least one character) plus a margin, so
    # the cut cannot touch a used token.
    depth_needed = None if max_chunks is None else -(-max_chunks // max(1, len(docs)))
    for d in docs:
        text = d.text
        if depth_needed is not None:
            cut = (depth_needed * chunk_size + 64) * 16
            if len(text) > cut:
                toks = tokenize(text[:cut], d.special)
                if len(toks) >= depth_needed * chunk_size + 8:
                    toks = toks[: depth_needed * chunk_size]
                    per_doc.append(
                        [toks[i : i + chunk_size] for i in range(0, len(toks), chunk_size)]
                    )
                    continue
        toks = tokenize(text, d.special)
        per_doc.append(
            [toks[i : i + chunk_size] for i in range(0, len(toks) - chunk_size + 1, chunk_size)]
        )
    chunks: list[list[int]] = []
    depth = 0
    while any(depth < len(c) for c in per_doc):
        for c in per_doc:
            if depth < len(c):
                chunks.append(c[depth])
                if max_chunks is not None and len(chunks) >= max_chunks:
                    return chunks
        depth += 1
    if not chunks:
        raise CalibrationError(
            f"the text is shorter than one chunk of {chunk_size} tokens; "
            "give more text or a smaller --chunk-size"
        )
    return chunks
