"""The agent loop: ``run`` calls ``step`` until an exit exception; one screen of logic.

A step: generate a reply on the append-only stream → parse it → (format error | submit |
ask the approval gate) → run the command in the shell → format the observation → keep it as
the next turn's append. Exits are typed exceptions (``Submitted``, ``LimitsExceeded``,
``ContextFull``, ``Stopped``) turned into one ``AgentFinished`` event.

Threading: ``run`` blocks (call it from a worker thread in a UI). ``stop()`` and
``queue_instruction()`` may be called from any other thread.

- ``stop()`` cancels generation at the next token, interrupts a running command (Ctrl-C)
  and ends the run with reason ``stopped`` (an approval prompt in progress should be
  answered/closed by the UI; the agent stops right after it returns).
- ``queue_instruction(text)``: a follow-up from the user. It is added to the *next* turn the
  agent appends, as its own user message after the tool response (see
  ``harness.tool_response_turn``); instructions queued together are joined by blank lines.

Context: before each turn the agent checks that the append plus ``context_reserve`` new
tokens fit. If not, it rebuilds the conversation with every observation but the latest
``keep_recent`` cut to a short head/tail, resets the model and continues on that fresh
stream (one full re-prefill; the model's earlier replies are kept verbatim, re-tokenized),
emitting ``ContextThinned``. If even that does not fit, the run ends with ``context_full``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tmax_local.agent import events as ev
from tmax_local.agent import harness
from tmax_local.agent.harness import HarnessConfig
from tmax_local.agent.parser import ReplyParser
from tmax_local.agent.protocols import ApprovalGate, Approver, Checkpointer, ModelBackend, Shell
from tmax_local.agent.transcript import TranscriptWriter, new_session_id
from tmax_local.errors import TmaxError

if TYPE_CHECKING:
    from tmax_local.approval import Answer, ApprovalRequest


class AgentExit(Exception):
    reason: ev.FinishReason = "error"


class Submitted(AgentExit):
    reason = "submitted"


class LimitsExceeded(AgentExit):
    reason = "step_limit"


class ContextFull(AgentExit):
    reason = "context_full"


class Stopped(AgentExit):
    reason = "stopped"


class FormatError(Exception):
    """The reply had no usable call; carries the observation for the model."""


@dataclass
class _Turn:
    """One piece of the conversation, kept so it can be rebuilt when thinning."""

    kind: str  # "prompt" | "reply" | "observation" | "user"
    text: str
    closed: bool = True  # for replies: the model ended its turn itself


class Agent:
    """Runs one task.

    ``gate`` is a ``tmax_local.approval.Gate`` (``review(command, ask, cwd=) -> Verdict``);
    ``approver`` answers the questions it asks (None: each is answered with a rejection).
    ``transcript`` receives every event and the raw stream records (see ``transcript``).
    ``checkpointer`` (optional) records the project before each command (undo).
    """

    def __init__(
        self,
        model: ModelBackend,
        shell: Shell,
        gate: ApprovalGate,
        *,
        approver: Approver | None = None,
        config: HarnessConfig | None = None,
        transcript: TranscriptWriter | None = None,
        checkpointer: Checkpointer | None = None,
        system_prompt: str | None = None,
        context_reserve: int = 2048,
        keep_recent: int = 2,
        thin_chars: int = 400,
    ):
        self.model, self.shell, self.gate, self.approver = model, shell, gate, approver
        self.config = config if config is not None else HarnessConfig()
        self.transcript, self.system_prompt = transcript, system_prompt
        self.checkpointer = checkpointer
        self.context_reserve, self.keep_recent, self.thin_chars = (
            context_reserve,
            keep_recent,
            thin_chars,
        )
        self.step_count = 0
        self.session_id = new_session_id()
        self._subscribers: list[Callable[[ev.AgentEvent], None]] = []
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._queued: list[str] = []
        self._pending = ""  # what the next turn appends to the stream
        self._turns: list[_Turn] = []
        self._last_closed = True
        self._in_shell = threading.Event()
        self._shell_back = threading.Event()

    # --- for a UI ---------------------------------------------------------------------
    def subscribe(self, callback: Callable[[ev.AgentEvent], None]) -> None:
        self._subscribers.append(callback)

    def stop(self) -> None:
        self._cancel.set()
        if self._in_shell.is_set():
            threading.Thread(target=self._interrupt_until_back, daemon=True).start()

    def _interrupt_until_back(self) -> None:
        # Ctrl-C the running command, again every half second while it keeps running (a
        # command caught just as it starts, or one that traps SIGINT once), for at most 10 s.
        for _ in range(20):
            if not self._in_shell.is_set():
                return
            self.shell.interrupt()
            if self._shell_back.wait(0.5):
                return

    def queue_instruction(self, text: str) -> None:
        if text.strip():
            with self._lock:
                self._queued.append(text.strip())

    # --- the loop ---------------------------------------------------------------------
    def run(self, task: str) -> ev.AgentFinished:
        self.emit(
            ev.SessionStarted(
                self.session_id,
                task,
                self.model.name,
                str(self.transcript.path) if self.transcript else None,
            )
        )
        self._set_pending(harness.render_prompt(task, self.system_prompt), 1, reset=True)
        return self._loop()

    def resume(self, conversation: str, pending: str, steps_done: int) -> ev.AgentFinished:
        """Continue a saved session (see ``transcript.stream_text``): one re-prefill."""
        self.step_count = steps_done
        self.model.reset()
        self._set_pending(conversation + pending, steps_done + 1, reset=True)
        return self._loop()

    def _loop(self) -> ev.AgentFinished:
        try:
            while True:
                self.step()
        except AgentExit as exit_:
            done = ev.AgentFinished(exit_.reason, str(exit_), self.step_count)
        except TmaxError as err:
            done = ev.AgentFinished("error", str(err), self.step_count)
        if self.checkpointer is not None:
            try:
                self.checkpointer.session_end(self.session_id)
            except TmaxError as err:
                self.emit(ev.CheckpointFailed(self.step_count, str(err)))
        self.emit(done)
        return done

    def step(self) -> None:
        if self._cancel.is_set():
            raise Stopped("Stopped by the user.")
        if self.step_count >= self.config.max_steps:
            raise LimitsExceeded(f"Reached the step limit ({self.config.max_steps}).")
        self.step_count += 1
        step = self.step_count
        self.emit(ev.StepStarted(step))
        self._fit_context(step)
        reply = self._generate(step)
        try:
            observation = self._act(step, reply)
            kind = "observation"
        except FormatError as fe:
            observation, kind = str(fe), "user"
        self._turns.append(_Turn(kind, observation))
        with self._lock:
            instruction, self._queued = "\n\n".join(self._queued) or None, []
        if instruction:
            self._turns.append(_Turn("user", instruction))
            self.emit(ev.InstructionAdded(step, instruction))
        wrap = harness.tool_response_turn if kind == "observation" else harness.user_message_turn
        self._set_pending(
            wrap(observation, model_closed_turn=self._last_closed, instruction=instruction),
            step + 1,
        )

    def _generate(self, step: int) -> ReplyParser:
        parser = ReplyParser()

        def on_text(piece: str) -> None:
            kept = parser.feed(piece)
            if kept:
                self.emit(ev.ReasoningDelta(step, kept))

        gen = self.model.generate(
            self._pending,
            on_text=on_text,
            cancel=self._cancel,
            max_tokens=self.config.max_new_tokens,
        )
        self._record("Reply", step=step, text=gen.text, finish=gen.finish)
        self._last_closed = gen.finish == "stop"
        self._turns.append(_Turn("reply", gen.text, self._last_closed))
        self.emit(
            ev.TurnStats(
                step,
                gen.tokens_evaluated,
                gen.tokens_generated,
                gen.tokens_generated / gen.generation_seconds
                if gen.generation_seconds > 0
                else 0.0,
                gen.tokens_evaluated / gen.prompt_seconds if gen.prompt_seconds > 0 else 0.0,
                gen.time_to_first_token_s,
                gen.context_used,
                self.model.context_limit,
                gen.finish,
                gen.tokens_cached,
            )
        )
        if gen.finish == "cancelled" or self._cancel.is_set():
            raise Stopped("Stopped by the user.")
        return parser

    def _act(self, step: int, parser: ReplyParser) -> str:
        reply = parser.finish()
        if reply.error is not None:
            self.emit(ev.FormatErrorRaised(step, reply.error))
            raise FormatError(reply.error)
        command = reply.command
        assert command is not None
        self.emit(ev.ToolCallProposed(step, command, reply.ignored))
        if harness.is_submission(command):
            raise Submitted("The agent submitted its work.")

        def ask(request: ApprovalRequest) -> Answer:
            self.emit(ev.ApprovalRequested(step, request))
            if self.approver is not None:
                answer = self.approver(request)
            else:
                from tmax_local.approval import Reject

                answer = Reject("nobody is there to approve commands in this session")
            self.emit(ev.ApprovalAnswered(step, answer))
            return answer

        live = self.shell if callable(getattr(self.shell, "live_state", None)) else None
        verdict = self.gate.review(command, ask, cwd=getattr(self.shell, "cwd", None), live=live)
        if self._cancel.is_set():
            raise Stopped("Stopped by the user.")
        if not verdict.run:
            observation = verdict.observation or ""
            self.emit(ev.CommandRejected(step, command, observation))
            return observation
        to_run = verdict.command
        assert to_run is not None  # a verdict to run carries the exact command
        self._checkpoint(step, to_run)
        t0 = time.perf_counter()
        self._shell_back.clear()
        self._in_shell.set()
        if self._cancel.is_set():  # stop() came just before the command could start
            self._in_shell.clear()
            raise Stopped("Stopped by the user.")
        try:
            # "Run unsandboxed": the user let this one command run outside the sandbox.
            outside = getattr(self.shell, "run_unsandboxed", None) if verdict.unsandboxed else None
            result = (outside or self.shell.run)(to_run, self.config.timeout)
        finally:
            self._in_shell.clear()
            self._shell_back.set()
        exit_code = 124 if result.timed_out else result.exit_code
        observation = harness.format_observation(
            result.output,
            exit_code,
            config=self.config,
            dropped=getattr(result, "dropped_chars", 0),
        )
        self.emit(
            ev.CommandExecuted(step, to_run, result, observation, time.perf_counter() - t0)
        )
        if self._cancel.is_set():
            raise Stopped("Stopped by the user.")
        if harness.SUBMIT_MARKER in result.output:
            raise Submitted("The agent submitted its work.")
        return observation

    def _checkpoint(self, step: int, command: str) -> None:
        if self.checkpointer is None:
            return
        try:
            cp = self.checkpointer.before_command(self.session_id, step, command)
        except TmaxError as err:
            self.emit(ev.CheckpointFailed(step, str(err)))
            return
        self.emit(ev.CheckpointTaken(step, cp.id, cp.seconds, list(cp.not_covered)))

    # --- context ----------------------------------------------------------------------
    def _fit_context(self, step: int) -> None:
        need = self.model.count_tokens(self._pending) + self.context_reserve
        before = self.model.context_used
        if before + need <= self.model.context_limit:
            return
        text = self._rebuilt(thin=True)
        after = self.model.count_tokens(text)
        if after + self.context_reserve > self.model.context_limit:
            raise ContextFull(
                f"The conversation no longer fits the {self.model.context_limit}-token context "
                "even with old outputs shortened; start a new session or raise --ctx."
            )
        self.model.reset()
        self._set_pending(text, step, reset=True)
        self.emit(
            ev.ContextThinned(
                step,
                before + need - self.context_reserve,
                after,
                f"Context nearly full: shortened older command outputs and re-read the "
                f"conversation ({before} → {after} tokens).",
            )
        )

    def _rebuilt(self, thin: bool) -> str:
        """The conversation as text, older observations cut to head/tail, plus the pending turn."""
        obs_idx = [i for i, t in enumerate(self._turns) if t.kind == "observation"]
        old = set(obs_idx[: max(0, len(obs_idx) - self.keep_recent)]) if thin else set()
        short = HarnessConfig(
            observation_max_chars=self.thin_chars,
            observation_head_chars=self.thin_chars // 2,
            observation_tail_chars=self.thin_chars // 2,
        )
        text = ""
        for i, t in enumerate(self._turns):
            if t.kind == "prompt":
                text += t.text
            elif t.kind == "reply":
                text += t.text + harness.IM_END  # cut replies are closed, as when appended
            elif t.kind == "observation":
                body = harness.truncate_output(t.text, short) if i in old else t.text
                turn = harness.tool_response_turn(body)
                text += turn[: -len(harness.GENERATION_PROMPT)]
            else:
                text += harness.user_turn(t.text)
            if t.kind in ("observation", "user") and (
                i + 1 == len(self._turns) or self._turns[i + 1].kind == "reply"
            ):
                text += harness.GENERATION_PROMPT
        return text

    # --- plumbing ---------------------------------------------------------------------
    def emit(self, event: ev.AgentEvent) -> None:
        if self.transcript is not None:
            self.transcript.event(event)
        for cb in list(self._subscribers):
            cb(event)

    def _set_pending(self, text: str, step: int, *, reset: bool = False) -> None:
        """What the next turn (number ``step``) appends; ``reset``: it starts a fresh stream."""
        self._pending = text
        if reset:
            self._turns = [_Turn("prompt", text)]
        self._record("Appended", step=step, text=text, reset=reset)

    def _record(self, kind: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.write(kind, **fields)
