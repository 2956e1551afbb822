"""The three things the agent is given through its constructor: a model, a shell, an approver.

Only typing lives here (no imports of the implementations), so a UI or a test can code
against these without loading llama.cpp or a PTY.

- ``ModelBackend``: an append-only conversation with a model. Implemented by
  ``tmax_local.agent.engine.LlamaEngine`` (llama.cpp) and
  ``tmax_local.agent.scripted.ScriptedModel`` (plays recorded outputs).
- ``Shell``: what the agent uses of ``tmax_local.shell.PtyShell``.
- ``Approver``: the callback that asks the user about a command, used by the approval
  gate only when the policy says to ask.
- ``ApprovalGate``: what the agent uses of ``tmax_local.approval.Gate``.
- ``Checkpointer`` (optional): records the project before each command (undo).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tmax_local.approval import Answer, ApprovalRequest, Verdict

__all__ = [
    "ApprovalGate",
    "Approver",
    "CheckpointLike",
    "Checkpointer",
    "CommandResultLike",
    "Generation",
    "GenerationFinish",
    "ModelBackend",
    "Shell",
]

GenerationFinish = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class Generation:
    """One model turn, as the backend produced it.

    ``text`` is the raw reply (reasoning, ``<tool_call>`` markup), without the closing
    ``<|im_end|>``. ``finish`` is "stop" when the model ended its turn itself (its
    ``<|im_end|>`` is then part of the token stream), "length" when it hit ``max_tokens``,
    "cancelled" when the cancel event was set. In the last two cases the stream ends
    mid-reply and the harness closes the turn before appending the next observation.
    """

    text: str
    finish: GenerationFinish
    tokens_evaluated: int  # tokens this turn had to evaluate before sampling (the appended ones)
    tokens_generated: int  # tokens sampled this turn
    prompt_seconds: float  # time spent evaluating the appended tokens
    generation_seconds: float  # time spent sampling
    time_to_first_token_s: float
    context_used: int  # tokens in the stream after this turn
    # Prompt tokens a server took from its prefix cache this turn (None: local, or unreported).
    tokens_cached: int | None = None


@runtime_checkable
class ModelBackend(Protocol):
    """An append-only token stream with a model behind it.

    The agent calls ``generate(append, ...)`` once per turn: the backend tokenizes
    ``append`` (special tokens such as ``<|im_start|>`` are parsed as such), adds it to the
    end of its stream, evaluates only those new tokens (the history is already in the
    model's state) and samples the reply, calling ``on_text`` with each decoded piece.
    The first turn appends the whole rendered prompt; each later turn appends the
    observation turn (see ``harness.observation_turn``). History is never re-rendered.

    ``reset()`` drops the stream: the next ``generate`` starts from an empty context (used
    only when the agent thins an overflowing conversation and re-prefills it).
    """

    name: str
    context_limit: int

    @property
    def context_used(self) -> int:
        """Tokens currently in the stream."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` would add to the stream (special tokens parsed)."""
        ...

    def generate(
        self,
        append: str,
        *,
        on_text: Callable[[str], None],
        cancel: threading.Event,
        max_tokens: int,
    ) -> Generation: ...

    def reset(self) -> None: ...


@runtime_checkable
class CommandResultLike(Protocol):
    """The fields of ``tmax_local.shell.CommandResult`` the agent reads."""

    @property
    def exit_code(self) -> int | None: ...

    @property
    def output(self) -> str: ...

    @property
    def timed_out(self) -> bool: ...


@runtime_checkable
class Shell(Protocol):
    """What the agent uses of ``tmax_local.shell.PtyShell``.

    ``run`` blocks until the command finishes or ``timeout`` seconds pass (the shell then
    interrupts it and reports ``timed_out``); ``interrupt`` (from another thread) stops the
    running command, as Ctrl-C would. Working directory and environment persist between
    calls, as the model was told.
    """

    def run(self, command: str, timeout: float) -> CommandResultLike: ...

    def interrupt(self) -> None: ...


class CheckpointLike(Protocol):
    """What the agent reads of a checkpoint (``tmax_local.undo.checkpointer.Checkpoint``)."""

    @property
    def id(self) -> str: ...

    @property
    def seconds(self) -> float: ...

    @property
    def not_covered(self) -> list[tuple[str, str]]:
        """(path, reason) of what it newly found it cannot keep (ignored, too large...)."""
        ...


@runtime_checkable
class Checkpointer(Protocol):
    """Records the project before each command so it can be undone (``tmax_local.undo``).

    ``before_command`` raises ``TmaxError`` when it cannot record (the agent reports that
    and runs the command anyway). ``session_end`` records the state after the last command
    and returns that checkpoint's id.
    """

    def before_command(self, session_id: str, step: int, command: str) -> CheckpointLike: ...

    def session_end(self, session_id: str) -> str: ...


# Called by the approval gate when the policy wants the user's answer. It receives the
# approval module's request (command, risk labels, reason for asking) and returns one of
# its answers (Approve, Edit, Reject(reason), AllowRule). It may block until the user
# answers; a UI typically posts the request to its event loop and waits on a future.
Approver = Callable[["ApprovalRequest"], "Answer"]


class ApprovalGate(Protocol):
    """What the agent uses of ``tmax_local.approval.Gate``: review a command, asking
    ``ask`` when the policy wants the user's answer."""

    def review(
        self, command: str, ask: Approver, *, cwd: Path | str | None = None, live: Any = None
    ) -> Verdict: ...

    # ``live``: the shell the command will run in, when it can report its state
    # (``tmax_local.approval.live.LiveShell``): checked before anything runs unasked.
