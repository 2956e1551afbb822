"""Events the agent emits while it works: the whole contract between the agent and any UI.

The agent (``tmax_local.agent.loop.Agent``) calls every subscriber with one of these frozen
dataclasses, in order, from the thread that runs the agent. A UI must not block in the
callback (post a message to its own loop instead). Live terminal output does not come
through here: subscribe to the shell (``PtyShell.subscribe``) for the raw bytes.

Order within a step::

    StepStarted
    ReasoningDelta*            (streamed as the model generates)
    TurnStats                  (once generation of the turn is over)
    then one of:
      FormatErrorRaised                               (no usable tool call)
      ToolCallProposed
        [ApprovalRequested, ApprovalAnswered]         (only when the policy asks)
        [CheckpointTaken | CheckpointFailed]          (before a command runs; undo)
        CommandExecuted | CommandRejected
    [InstructionAdded]         (a queued user instruction went into the next observation)
    [ContextThinned]           (history was thinned to fit; see engine docs)

and at the very end, exactly once, ``AgentFinished``.

Names and fields are stable: the TUI and the transcript files depend on them. Every event
has ``kind`` (its class name), used by the JSON-lines transcript.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tmax_local.agent.protocols import CommandResultLike
    from tmax_local.approval import Answer, ApprovalRequest

FinishReason = Literal["submitted", "step_limit", "stopped", "context_full", "error"]


@dataclass(frozen=True)
class AgentEvent:
    """Base class of every agent event."""

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class SessionStarted(AgentEvent):
    """The agent started on a task. ``transcript_path`` is the JSON-lines file (or None)."""

    session_id: str
    task: str
    model: str
    transcript_path: str | None = None


@dataclass(frozen=True)
class StepStarted(AgentEvent):
    """A new model turn begins (steps count from 1)."""

    step: int


@dataclass(frozen=True)
class ReasoningDelta(AgentEvent):
    """A piece of the model's raw output text, streamed as it is generated.

    Concatenating every delta of a step gives the model's full raw reply for that step
    (prose, ``</think>`` if any, and the ``<tool_call>`` markup); the parser's view of it
    comes afterwards in ``ToolCallProposed`` / ``FormatErrorRaised``.
    """

    step: int
    text: str


@dataclass(frozen=True)
class ToolCallProposed(AgentEvent):
    """The model proposed a command (the first tool call of its reply).

    ``ignored`` holds the commands of any further tool calls in the same reply: they are
    never run (as in the harness TMax was trained with) and the UI should say so.
    """

    step: int
    command: str
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FormatErrorRaised(AgentEvent):
    """The reply had no valid bash call; ``message`` is the observation sent back."""

    step: int
    message: str


@dataclass(frozen=True)
class ApprovalRequested(AgentEvent):
    """The approval policy wants the user's answer for this command.

    ``request`` is the approval module's request object (command, risk labels, why it
    asks); the approver callback given to the agent receives the same object.
    """

    step: int
    request: ApprovalRequest


@dataclass(frozen=True)
class ApprovalAnswered(AgentEvent):
    """The user's answer (an ``tmax_local.approval`` answer: Approve, Edit, Reject, AllowRule)."""

    step: int
    answer: Answer


@dataclass(frozen=True)
class CommandRejected(AgentEvent):
    """The command was not run; ``observation`` (the user's reason) goes back to the model."""

    step: int
    command: str
    observation: str


@dataclass(frozen=True)
class CommandExecuted(AgentEvent):
    """The command ran in the shell.

    ``command`` is what actually ran (after any user edit), ``result`` the shell's
    ``CommandResult`` (exit_code, output, timed_out, ...), ``observation`` the exact text
    the model will read, and ``duration_s`` the wall time of the run.
    """

    step: int
    command: str
    result: CommandResultLike
    observation: str
    duration_s: float = 0.0


@dataclass(frozen=True)
class CheckpointTaken(AgentEvent):
    """The project was recorded just before this step's command (``tmax-local restore``
    puts it back). ``not_covered``: (path, reason) pairs newly found not covered
    (ignored, too large, unreadable)."""

    step: int
    checkpoint: str
    seconds: float
    not_covered: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class CheckpointFailed(AgentEvent):
    """No checkpoint could be recorded before this step's command (it runs anyway)."""

    step: int
    message: str


@dataclass(frozen=True)
class InstructionAdded(AgentEvent):
    """A follow-up instruction the user queued was added to the next observation turn."""

    step: int
    text: str


@dataclass(frozen=True)
class TurnStats(AgentEvent):
    """Figures for one model turn.

    ``tokens_evaluated``: prompt tokens the backend had to evaluate this turn (only what the
    turn appended, thanks to the append-only stream); ``tokens_generated``: sampled tokens;
    ``context_used``/``context_limit``: tokens in the context after the turn / its size.
    """

    step: int
    tokens_evaluated: int
    tokens_generated: int
    gen_tokens_per_s: float
    prompt_tokens_per_s: float
    time_to_first_token_s: float
    context_used: int
    context_limit: int
    finish: str = "stop"  # "stop" (end of turn), "length" (max new tokens), "cancelled"
    tokens_cached: int | None = None  # prompt tokens a model server reused from its cache


@dataclass(frozen=True)
class ContextThinned(AgentEvent):
    """The next turn would not fit: old observations were cut to head/tail and the
    conversation continues on a fresh token stream (one full re-prefill)."""

    step: int
    tokens_before: int
    tokens_after: int
    message: str


@dataclass(frozen=True)
class AgentFinished(AgentEvent):
    """The run is over. ``reason``: submitted | step_limit | stopped | context_full | error."""

    reason: FinishReason
    message: str
    steps: int = 0


# Called with every agent event, in the agent's thread (`Agent.subscribe`).
EventCallback = Callable[[AgentEvent], None]

ALL_EVENTS: tuple[type[AgentEvent], ...] = (
    SessionStarted,
    StepStarted,
    ReasoningDelta,
    ToolCallProposed,
    FormatErrorRaised,
    ApprovalRequested,
    ApprovalAnswered,
    CommandRejected,
    CommandExecuted,
    CheckpointTaken,
    CheckpointFailed,
    InstructionAdded,
    TurnStats,
    ContextThinned,
    AgentFinished,
)
