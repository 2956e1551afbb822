"""A model backend that plays recorded replies: the real loop, no model.

Like mini-swe-agent's DeterministicModel: each ``generate`` returns the next string of the
script, streamed in small pieces through ``on_text``. A string is the raw text the model
would emit after the ``<think>\\n`` generation prompt; anything from ``<|im_end|>`` on is cut.
The CLI exposes it as ``--model script:PATH`` (PATH: a JSON list of strings), so sessions and
bugs can be replayed without a model.

It keeps the whole conversation as text (``stream``), so tests can check the exact framing
the agent appended, and counts tokens roughly (4 characters per token) for the context logic.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tmax_local.agent import harness
from tmax_local.agent.protocols import Generation, GenerationFinish
from tmax_local.errors import ConfigError, TmaxError


class ScriptExhausted(TmaxError):
    title = "Script finished"


class ScriptedModel:
    """Plays ``replies`` one per turn. ``chunk`` sets the streaming piece size (characters)."""

    def __init__(
        self,
        replies: Iterable[str],
        *,
        name: str = "script",
        context_limit: int = harness.CONTEXT_TOKENS,
        chunk: int = 16,
        chars_per_token: int = 4,
    ):
        self.replies = list(replies)
        self.name = name
        self.context_limit = context_limit
        self.chunk = max(1, chunk)
        self.chars_per_token = chars_per_token
        self.stream = ""  # everything appended and generated, as text
        self.appended: list[str] = []  # what each turn appended, in order
        self.turns = 0
        self.resets = 0

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> ScriptedModel:
        p = Path(path).expanduser()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"model script not found: {p}") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"model script {p} is not valid JSON: {err}") from None
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise ConfigError(f"model script {p} must be a JSON list of strings")
        return cls(data, name=f"script:{p.name}", **kwargs)

    def count_tokens(self, text: str) -> int:
        return -(-len(text) // self.chars_per_token)

    @property
    def context_used(self) -> int:
        return self.count_tokens(self.stream)

    def reset(self) -> None:
        self.stream = ""
        self.resets += 1

    def generate(
        self,
        append: str,
        *,
        on_text: Callable[[str], None],
        cancel: threading.Event,
        max_tokens: int,
    ) -> Generation:
        if self.turns >= len(self.replies):
            raise ScriptExhausted(f"the model script has no reply left for turn {self.turns + 1}")
        t0 = time.perf_counter()
        self.appended.append(append)
        self.stream += append
        reply = self.replies[self.turns]
        self.turns += 1
        end = reply.find(harness.IM_END)
        if end != -1:
            reply = reply[:end]
        limit_chars = max_tokens * self.chars_per_token
        finish: GenerationFinish = "stop"
        if len(reply) > limit_chars:
            reply, finish = reply[:limit_chars], "length"
        t1 = time.perf_counter()
        sent = 0
        while sent < len(reply):
            if cancel.is_set():
                finish = "cancelled"
                break
            piece = reply[sent : sent + self.chunk]
            on_text(piece)
            sent += len(piece)
        text = reply[:sent]
        self.stream += text + (harness.IM_END if finish == "stop" else "")
        t2 = time.perf_counter()
        return Generation(
            text=text,
            finish=finish,
            tokens_evaluated=self.count_tokens(append),
            tokens_generated=self.count_tokens(text) + (1 if finish == "stop" else 0),
            prompt_seconds=t1 - t0,
            generation_seconds=t2 - t1,
            time_to_first_token_s=t1 - t0,
            context_used=self.context_used,
        )
