"""Glue between the app and the core: the session (shell, model, agent) and event rendering.

Everything that touches `tmax_local.agent`, `tmax_local.shell` and `tmax_local.approval`
lives here, so the widgets stay views. The core modules are imported inside functions:
importing the TUI package does not load llama.cpp.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmax_local.agent import events as ev
from tmax_local.errors import ModelNotFound, TmaxError
from tmax_local.tui.approval_bar import ApprovalView

if TYPE_CHECKING:
    from tmax_local.tui.app import TmaxApp, TuiOptions


@dataclass(frozen=True)
class ModelInfo:
    name: str
    quant: str = ""
    backend: str = "CPU"
    layers: str = ""
    context_limit: int = 0


# -- approval answers ------------------------------------------------------------------
def _approval():
    from tmax_local import approval

    return approval


def approval_view(request: Any) -> ApprovalView:
    """What the approval bar shows for the approval module's request."""
    labels = []
    for label in getattr(request, "labels", ()) or ():
        name = getattr(label, "name", None) or getattr(label, "label", None) or str(label)
        severity = getattr(label, "severity", None) or getattr(label, "level", "medium")
        labels.append((str(name), str(getattr(severity, "value", severity))))
    rule = getattr(request, "suggested_rule", None)
    rule_text = getattr(rule, "pattern", None) or (str(rule) if rule is not None else "")
    explanation = getattr(request, "rule_explanation", "") or (
        getattr(rule, "describe", lambda: "")() if rule is not None else ""
    )
    return ApprovalView(
        command=request.command,
        labels=labels,
        reason=str(getattr(request, "reason", "") or ""),
        rule=rule_text,
        rule_explanation=explanation,
        step=int(getattr(request, "step", 0) or 0),
        ignored=list(getattr(request, "ignored", ()) or ()),
    )


def approve(view: ApprovalView) -> Any:
    return _approval().Approve()


def edit(view: ApprovalView, command: str) -> Any:
    return _approval().Edit(command)


def reject(view: ApprovalView, reason: str) -> Any:
    return _approval().Reject(reason)


def allow_rule(view: ApprovalView, rule: str, scope: str) -> Any:
    return _approval().AllowRule(rule, scope)


def stop_answer(request: Any) -> Any:
    """The answer given for the user when the run is stopped while the bar waits."""
    return _approval().Reject("The user stopped the agent.")


def missing_model_hint(err: TmaxError) -> str:
    if isinstance(err, ModelNotFound):
        return (
            "Get a model with `tmax-local download` (or convert a checkpoint with "
            "`tmax-local convert`), or pass --model PATH.gguf."
        )
    return ""


# -- the session -----------------------------------------------------------------------
class Session:
    """Owns the shell, the loaded model and the agent for one app."""

    def __init__(
        self, options: TuiOptions, on_event: Callable[[Any], None], approver: Any
    ) -> None:
        self.options = options
        self.on_event = on_event
        self.approver = approver
        self.shell: Any = None
        self.model: Any = None
        self.agent: Any = None
        self.recorder: Any = None
        self.transcript_path: Path | None = None
        self._lock = threading.Lock()
        self._queued: list[str] = []
        self.mode = options.mode
        self.resumed_from: Path | None = None
        self.resumed_records: list[dict[str, Any]] = []

    @property
    def model_ready(self) -> bool:
        return self.model is not None

    def start_shell(self, *, rows: int, cols: int, on_output, on_event) -> Any:
        from tmax_local.shell import AsciicastRecorder, PtyShell
        from tmax_local.shell.events import Output

        cwd = str(self.options.cwd) if self.options.cwd else None
        shell = PtyShell(cwd=cwd, rows=rows, cols=cols, env=self.options.shell_env or None)
        self.recorder = AsciicastRecorder(cols=cols, rows=rows)
        shell.subscribe(self.recorder)

        def forward(event: Any) -> None:
            if isinstance(event, Output):
                on_output(event.data)
            else:
                on_event(event)

        shell.subscribe(forward)
        self.shell = shell
        return shell

    def load_model(self, progress: Callable[[str], None]) -> ModelInfo:
        from tmax_local.agent.models import load_model

        self.model = load_model(
            self.options.model, progress=progress, n_gpu_layers=self.options.n_gpu_layers
        )
        return ModelInfo(
            name=getattr(self.model, "name", str(self.options.model)),
            quant=getattr(self.model, "quant", ""),
            backend=getattr(self.model, "backend", "CPU"),
            layers=getattr(self.model, "layers_offloaded", ""),
            context_limit=getattr(self.model, "context_limit", 0),
        )

    def run_task(self, task: str) -> None:
        from tmax_local.agent.loop import Agent

        self.agent = Agent(
            model=self.model, shell=self.shell, approver=self.approver,
            on_event=self.on_event, mode=self.mode,
        )
        self.agent.run(task)

    def queue_instruction(self, text: str) -> None:
        if self.agent is not None:
            self.agent.queue_instruction(text)

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.approver.cancel()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if self.agent is not None:
            self.agent.set_mode(mode)

    def export(self, directory: Path | None) -> list[Path]:
        raise TmaxError("Nothing to export yet.", title="Export")

    def close(self) -> None:
        self.stop()
        if self.shell is not None:
            self.shell.close()


# -- rendering agent and shell events --------------------------------------------------
def apply_event(app: TmaxApp, event: Any) -> None:
    """Show one agent or shell event in the app's widgets (UI thread)."""
    pane = app.reasoning
    status = app.status
    if isinstance(event, ev.SessionStarted):
        app.session.transcript_path = (
            Path(event.transcript_path) if event.transcript_path else None
        )
    elif isinstance(event, ev.StepStarted):
        pane.step_view(event.step)
        status.update_info(step=event.step, state="thinking")
    elif isinstance(event, ev.ReasoningDelta):
        pane.append(event.step, event.text)
    elif isinstance(event, ev.TurnStats):
        status.update_info(gen_tok_s=event.gen_tokens_per_s)
        app.note_context(event.context_used, event.context_limit)
    elif isinstance(event, ev.ToolCallProposed):
        note = f"(+{len(event.ignored)} ignored)" if event.ignored else ""
        pane.step_view(event.step).set_command(event.command, note)
    elif isinstance(event, ev.FormatErrorRaised):
        pane.step_view(event.step).set_outcome("no valid bash call: format error sent back",
                                               good=False)
    elif isinstance(event, ev.ApprovalAnswered):
        pane.step_view(event.step).set_outcome(f"answer: {describe_answer(event.answer)}")
    elif isinstance(event, ev.CommandRejected):
        pane.step_view(event.step).set_outcome(f"rejected: {event.observation}", good=False)
        status.update_info(state="thinking")
    elif isinstance(event, ev.CommandExecuted):
        view = pane.step_view(event.step)
        if view.command != event.command:
            view.set_command(event.command, "(edited)")
        code = getattr(event.result, "exit_code", None)
        extra = " (timed out)" if getattr(event.result, "timed_out", False) else ""
        view.set_outcome(f"exit {code}{extra} · {event.duration_s:.1f}s", good=code == 0)
        status.update_info(state="thinking")
    elif isinstance(event, ev.InstructionAdded):
        pane.add_note(f"instruction added: {event.text}")
    elif isinstance(event, ev.ContextThinned):
        pane.add_note(event.message, level="warning")
        app.note_context(event.tokens_after, status.info.context_limit)
    elif isinstance(event, ev.AgentFinished):
        app.finished = event
        app.agent_running = False
        app.approval_bar.hide()
        level = "error" if event.reason == "error" else "info"
        pane.add_note(f"finished ({event.reason}): {event.message}", level=level)
        status.update_info(state=f"done: {event.reason}")
    else:
        _apply_shell_event(app, event)


def _apply_shell_event(app: TmaxApp, event: Any) -> None:
    name = type(event).__name__
    if name == "InputWaitSuspected":
        app.update_terminal_title(waiting=True)
        app.notify("The command seems to wait for input: Ctrl+T to type into the terminal.",
                   title="Terminal", timeout=8)
    elif name == "CommandStarted":
        app.status.update_info(state="running")
    elif name == "CommandFinished":
        app.update_terminal_title()
    elif name == "ShellRestarted":
        app.reasoning.add_note(f"shell restarted: {event.reason}", level="warning")


def describe_answer(answer: Any) -> str:
    kind = type(answer).__name__
    if kind == "Reject":
        return f"rejected ({getattr(answer, 'reason', '')})"
    if kind == "Edit":
        return "edited"
    if kind == "AllowRule":
        return f"always allow `{getattr(answer, 'rule', '')}`"
    return kind.lower()


def find_session(options: TuiOptions) -> Path:
    """The transcript to reopen: --session, else the newest in the sessions directory."""
    from tmax_local import paths
    from tmax_local.agent.transcript import list_sessions

    if options.session is not None:
        if not Path(options.session).is_file():
            raise TmaxError(f"no session file {options.session}", title="Resume")
        return Path(options.session)
    directory = options.sessions_dir or paths.sessions_dir()
    sessions = list_sessions(directory)
    if not sessions:
        raise TmaxError(f"no saved session in {directory}", title="Resume")
    return sessions[0]


def show_records(app: TmaxApp, records: list[dict[str, Any]]) -> None:
    """Draw a saved session (transcript records) in the reasoning pane, read-only."""
    pane = app.reasoning
    for r in records:
        kind = r.get("kind")
        step = int(r.get("step") or 0)
        if kind == "SessionStarted":
            pane.add_task(str(r.get("task", "")))
        elif kind == "Reply":
            pane.step_view(step).set_reasoning(str(r.get("text", "")))
        elif kind == "ToolCallProposed":
            pane.step_view(step).set_command(str(r.get("command", "")))
        elif kind == "CommandRejected":
            pane.step_view(step).set_outcome(f"rejected: {r.get('observation', '')}", good=False)
        elif kind == "CommandExecuted":
            res = r.get("result") or {}
            code = res.get("exit_code") if isinstance(res, dict) else None
            view = pane.step_view(step)
            if view.command != r.get("command"):
                view.set_command(str(r.get("command", "")), "(edited)")
            view.set_outcome(f"exit {code}", good=code == 0)
        elif kind == "InstructionAdded":
            pane.add_note(f"instruction added: {r.get('text', '')}")
        elif kind == "AgentFinished":
            pane.add_note(f"finished ({r.get('reason')}): {r.get('message', '')}")
        elif kind == "TurnStats":
            app.status.update_info(step=step, context_used=int(r.get("context_used") or 0))


def show_resumed(app: TmaxApp) -> None:
    from tmax_local.agent.transcript import load_records

    path = find_session(app.options)
    records = load_records(path)
    app.session.resumed_from = path
    app.session.resumed_records = records
    show_records(app, records)
    app.reasoning.add_note(
        f"Reopened session {path.stem} (read-only). Type an instruction to continue it."
    )
