"""Glue between the app and the core: the session (shell, model, agent) and event rendering.

Everything that touches `tmax_local.agent`, `tmax_local.shell` and `tmax_local.approval`
lives here, so the widgets stay views. The core modules are imported inside functions:
importing the TUI package does not load llama.cpp.
"""

from __future__ import annotations

import contextlib
import io
import re
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


def approval_view(request: Any, step: int = 0, ignored: list[str] | None = None) -> ApprovalView:
    """What the approval bar shows for an `tmax_local.approval.ApprovalRequest`."""
    from tmax_local.approval import explain

    labels = [(lab.name, "high" if lab.high_risk else "medium") for lab in request.labels]
    parts = request.analysis.parts
    explanations = []
    for rule in request.suggested_rules:
        matched = [m.part.text for m in explain(rule, parts) if m.matches]
        if matched:
            explanations.append(f"`{rule}` allows: " + "; ".join(matched))
        else:
            explanations.append(f"`{rule}` matches no part of this command")
    return ApprovalView(
        command=request.command,
        labels=labels,
        reason="; ".join(request.reasons),
        rules=list(request.suggested_rules),
        rule_explanation=" · ".join(explanations),
        step=step,
        ignored=list(ignored or []),
    )


def rule_preview(request_parts: Any, rule: str) -> str:
    """How ``rule`` would match the parts of the pending command (for the rule dialog)."""
    from tmax_local.approval import explain
    from tmax_local.errors import ConfigError

    try:
        matches = explain(rule, request_parts)
    except ConfigError as err:
        return f"invalid rule: {err}"
    hits = [m.part.text for m in matches if m.matches]
    return ("allows: " + "; ".join(hits)) if hits else "matches no part of this command"


def approve(view: ApprovalView) -> Any:
    return _approval().Approve()


def edit(view: ApprovalView, command: str) -> Any:
    return _approval().Edit(command)


def reject(view: ApprovalView, reason: str) -> Any:
    return _approval().Reject(reason)


def allow_rule(view: ApprovalView, rules: list[str], scope: str) -> Any:
    return _approval().AllowRule(tuple(rules), scope)  # type: ignore[arg-type]


def stop_answer(request: Any) -> Any:
    """The answer given for the user when the run is stopped while the bar waits."""
    return _approval().Reject("The user stopped the agent.")


def missing_model_hint(err: TmaxError) -> str:
    if isinstance(err, ModelNeedsFetch):
        return (
            "Press F5 to download and convert it now (a few GB; progress shows in the "
            "status bar), or quit and pass --model PATH.gguf."
        )
    if isinstance(err, ModelNotFound):
        return (
            "Pass --model PATH.gguf, a checkpoint directory or a Hugging Face repo id, or "
            "convert one with `tmax-local convert`."
        )
    return ""


# -- the session -----------------------------------------------------------------------
def describe_engine(engine: Any) -> ModelInfo:
    """Model, quant and backend of a loaded model, for the status bar."""
    llm = getattr(engine, "llm", None)
    if llm is None:  # scripted model
        return ModelInfo(
            name=engine.name, quant="", backend="scripted", context_limit=engine.context_limit
        )
    import sys

    import llama_cpp

    meta = getattr(llm, "metadata", {}) or {}
    quant = _FILE_TYPES.get(str(meta.get("general.file_type", "")), "")
    name = meta.get("general.name") or engine.name
    layers_total = next((v for k, v in meta.items() if k.endswith(".block_count")), "?")
    requested = getattr(llm, "model_params", None)
    n_gpu = getattr(requested, "n_gpu_layers", 0) if requested is not None else 0
    if llama_cpp.llama_supports_gpu_offload() and n_gpu != 0:
        kind = "Metal" if sys.platform == "darwin" else "CUDA"
        done = layers_total if n_gpu < 0 or str(n_gpu) >= str(layers_total) else n_gpu
        return ModelInfo(
            str(name), quant, kind, f"{done}/{layers_total} layers", engine.context_limit
        )
    return ModelInfo(str(name), quant, "CPU", "", engine.context_limit)


# llama.cpp's `general.file_type` values (enum llama_ftype) for the common quants.
_FILE_TYPES = {
    "0": "F32",
    "1": "F16",
    "2": "Q4_0",
    "3": "Q4_1",
    "7": "Q8_0",
    "8": "Q5_0",
    "9": "Q5_1",
    "10": "Q2_K",
    "11": "Q3_K_S",
    "12": "Q3_K_M",
    "13": "Q3_K_L",
    "14": "Q4_K_S",
    "15": "Q4_K_M",
    "16": "Q5_K_S",
    "17": "Q5_K_M",
    "18": "Q6_K",
    "32": "BF16",
}


class Session:
    """Owns the shell, the loaded model and the agent for one app."""

    def __init__(self, options: TuiOptions, on_event: Callable[[Any], None], approver: Any) -> None:
        self.options = options
        self.on_event = on_event
        self.approver = approver
        self.shell: Any = None
        self.model: Any = None
        self.agent: Any = None
        self.recorder: Any = None
        self.cast_path: Path | None = None
        self.transcript_path: Path | None = None
        self.mode = options.mode
        self.resumed_from: Path | None = None
        self.resumed_records: list[dict[str, Any]] = []
        self.extra_rules: list[Any] = []

    @property
    def model_ready(self) -> bool:
        return self.model is not None

    def sessions_dir(self) -> Path:
        from tmax_local import paths

        return Path(self.options.sessions_dir or paths.sessions_dir())

    def start_shell(self, *, rows: int, cols: int, on_output, on_event) -> Any:
        from tmax_local.agent.transcript import new_session_id
        from tmax_local.shell import AsciicastRecorder, CommandStarted, Output, PtyShell

        shell = PtyShell(self.options.cwd, rows=rows, cols=cols, env=self.options.shell_env or None)
        directory = self.sessions_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self.cast_path = directory / f"{new_session_id()}.cast"
        self.recorder = AsciicastRecorder(
            self.cast_path, cols=cols, rows=rows, title="tmax-local terminal"
        )

        def forward(event: Any) -> None:
            if isinstance(event, Output):
                on_output(event.data)
                return
            if isinstance(event, CommandStarted):
                # Show the command the agent runs as a prompt line (the shell does not echo).
                # Same buffer as the output, so it stays in order.
                shown = event.command.replace("\n", "\r\n> ")
                on_output(f"\x1b[1;32m$\x1b[0m \x1b[1m{shown}\x1b[0m\r\n".encode())
            on_event(event)

        shell.subscribe(self.recorder)
        shell.subscribe(forward)
        shell.start()
        self.shell = shell
        return shell

    # TerminalBackend for the pane: keys typed in take-over mode, Ctrl-C, size.
    def send_input(self, data: bytes) -> None:
        if self.shell is not None:
            self.shell.send_input(data)

    def interrupt(self) -> None:
        if self.shell is not None:
            self.shell.interrupt()

    def resize(self, rows: int, cols: int) -> None:
        if self.shell is not None:
            self.shell.resize(rows, cols)
        if self.recorder is not None:
            self.recorder.resize(cols, rows)

    def load_model(self, progress: Callable[[str], None], *, fetch: bool = False) -> ModelInfo:
        """Resolve `--model` and load it (blocks; the app calls it from a worker thread).

        A model that would have to be downloaded or converted first raises
        `ModelNeedsFetch` unless ``fetch`` is true: the app asks the user before that.
        """
        from tmax_local.agent.resolve import load_backend

        runtime = self.options.model_options()
        spec = runtime.model
        if not fetch and needs_fetch(spec, runtime.quant):
            raise ModelNeedsFetch(
                f"{spec or 'allenai/tmax-2b'} is not converted yet (looked for "
                f"{converted_path(spec, runtime.quant)})."
            )
        if fetch:
            # Download and conversion report through tqdm bars on stderr: read those bars
            # and show them in the status bar (the app draws on the real terminal, which
            # is not sys.stderr, so nothing else is affected).
            progress("downloading / converting…")
            with contextlib.redirect_stderr(TqdmToStatus(progress)):
                resolved = runtime.resolve(progress=True)
        else:
            progress("resolving model…")
            resolved = runtime.resolve(progress=False)
        if resolved.kind == "gguf":
            progress(f"loading {resolved.path.name}…")
        self.model = load_backend(resolved, self.engine_options())
        return describe_engine(self.model)

    def engine_options(self) -> Any:
        """The `EngineOptions` the model is loaded with (from the app's options)."""
        return self.options.model_options().engine_options(grammar=self.options.grammar)

    def harness_config(self) -> Any:
        """The agent's `HarnessConfig` (steps, command timeout, tokens, sampling)."""
        return self.options.model_options().harness_config()

    def _gate(self) -> Any:
        from tmax_local.approval import Gate

        cwd = self.shell.cwd if self.shell is not None else (self.options.cwd or Path.cwd())
        return Gate.load(cwd, self.mode, rules_file=self.options.rules_file)

    def _new_agent(self, transcript_path: Path | None = None) -> Any:
        from tmax_local.agent.loop import Agent
        from tmax_local.agent.transcript import TranscriptWriter

        self.gate = self._gate()
        agent = Agent(
            self.model,
            self.shell,
            self.gate,
            approver=self.approver,
            config=self.harness_config(),
        )
        path = transcript_path or self.sessions_dir() / f"{agent.session_id}.jsonl"
        agent.transcript = TranscriptWriter(path)
        self.transcript_path = path
        agent.subscribe(self.on_event)
        self.agent = agent
        return agent

    def run_task(self, task: str) -> None:
        """Run the agent on a task (blocks; the app calls it from a worker thread)."""
        if self.resumed_records:
            self.continue_resumed(task)
            return
        agent = self._new_agent()
        try:
            agent.run(task)
        finally:
            agent.transcript.close()

    def continue_resumed(self, instruction: str) -> None:
        """Continue the reopened session with a new instruction from the user."""
        from tmax_local.agent import harness
        from tmax_local.agent.transcript import stream_text

        records, self.resumed_records = self.resumed_records, []
        conversation, pending = stream_text(records)
        replies = [r for r in records if r.get("kind") == "Reply"]
        steps_done = max((int(r.get("step") or 0) for r in replies), default=0)
        if pending is None:
            closed = bool(replies) and replies[-1].get("finish") == "stop"
            pending = harness.user_message_turn(instruction, model_closed_turn=closed)
        else:
            gp = harness.GENERATION_PROMPT
            body = pending.removesuffix(gp)
            pending = body + harness.user_turn(instruction) + gp
        agent = self._new_agent(self.resumed_from)
        try:
            agent.resume(conversation, pending, steps_done)
        finally:
            agent.transcript.close()

    def queue_instruction(self, text: str) -> None:
        if self.agent is not None:
            self.agent.queue_instruction(text)

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.approver.cancel()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        gate = getattr(self, "gate", None)
        if gate is not None:
            from tmax_local.approval.policy import check_mode

            gate.mode = check_mode(mode)

    def export(self, directory: Path | None) -> list[Path]:
        """Write the session as Markdown and the terminal recording as .cast."""
        import shutil

        from tmax_local.agent.transcript import load_records
        from tmax_local.tui.export import session_markdown

        source = self.transcript_path or self.resumed_from
        out_dir = Path(directory or (self.shell.cwd if self.shell else "."))
        written: list[Path] = []
        if source is not None and source.exists():
            md = out_dir / f"tmax-session-{source.stem}.md"
            md.write_text(session_markdown(load_records(source)), encoding="utf-8")
            written.append(md)
        if self.cast_path is not None and self.cast_path.exists():
            cast = out_dir / f"tmax-terminal-{self.cast_path.stem}.cast"
            shutil.copyfile(self.cast_path, cast)
            written.append(cast)
        if not written:
            raise TmaxError("Nothing to export yet: run a task first.", title="Export")
        return written

    def close(self) -> None:
        self.stop()
        if self.shell is not None:
            self.shell.close()
        if self.recorder is not None:
            self.recorder.close()


class TqdmToStatus(io.TextIOBase):
    """A stderr stand-in that turns tqdm progress bars into short status texts."""

    _BAR = re.compile(r"(?P<desc>[^\r\n|]*?):?\s*(?P<pct>\d{1,3})%\|")

    def __init__(self, report: Callable[[str], None], min_interval_s: float = 0.2) -> None:
        self._report = report
        self._min = min_interval_s
        self._last = 0.0
        self._last_text = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        import time

        matches = list(self._BAR.finditer(text))
        if matches:
            m = matches[-1]
            desc = m.group("desc").strip() or "progress"
            shown = f"{desc[:40]} {int(m.group('pct'))}%"
            now = time.monotonic()
            if shown != self._last_text and (
                now - self._last >= self._min or m.group("pct") == "100"
            ):
                self._last, self._last_text = now, shown
                self._report(shown)
        return len(text)


class ModelNeedsFetch(ModelNotFound):
    """The model exists on the Hub but not here: download/convert it only if the user asks."""

    title = "Model not downloaded"


def _repo_spec(spec: str | None) -> str | None:
    """The repo id `spec` names, or None when it is a script, a file or a directory."""
    from tmax_local.agent.resolve import DEFAULT_MODEL
    from tmax_local.convert.source import looks_like_repo_id

    spec = (spec or DEFAULT_MODEL).strip()
    if spec.startswith("script:") or Path(spec).expanduser().exists():
        return None
    return spec if looks_like_repo_id(spec) else None


def converted_path(spec: str | None, quant: str | None = None) -> Path | None:
    from tmax_local.agent.resolve import DEFAULT_QUANT
    from tmax_local.convert import default_output

    repo = _repo_spec(spec)
    if repo is None:
        return None
    return default_output(repo.rstrip("/").split("/")[-1], (quant or DEFAULT_QUANT).upper())


def needs_fetch(spec: str | None, quant: str | None = None) -> bool:
    """True when loading `spec` would download or convert (a repo id not converted yet)."""
    path = converted_path(spec, quant)
    return path is not None and not path.is_file()


# -- rendering agent and shell events --------------------------------------------------
def apply_event(app: TmaxApp, event: Any) -> None:
    """Show one agent or shell event in the app's widgets (UI thread)."""
    pane = app.reasoning
    status = app.status
    if isinstance(event, ev.SessionStarted):
        app.session.transcript_path = Path(event.transcript_path) if event.transcript_path else None
    elif isinstance(event, ev.StepStarted):
        pane.step_view(event.step)
        status.update_info(step=event.step, state="thinking")
    elif isinstance(event, ev.ReasoningDelta):
        pane.append(event.step, event.text)
    elif isinstance(event, ev.TurnStats):
        status.update_info(gen_tok_s=event.gen_tokens_per_s)
        app.note_context(event.context_used, event.context_limit)
    elif isinstance(event, ev.ToolCallProposed):
        app.pending_ignored = list(event.ignored)
        pane.flush()
        note = f"(+{len(event.ignored)} ignored)" if event.ignored else ""
        pane.step_view(event.step).set_command(event.command, note)
    elif isinstance(event, ev.FormatErrorRaised):
        pane.step_view(event.step).set_outcome(
            "no valid bash call: format error sent back", good=False
        )
    elif isinstance(event, ev.ApprovalRequested):
        app.pending_step = event.step
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
        pane.flush()
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
        app.notify(
            "The command seems to wait for input: Ctrl+T to type into the terminal.",
            title="Terminal",
            timeout=8,
        )
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
        return "always allow " + ", ".join(f"`{r}`" for r in getattr(answer, "rules", ()))
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
    app.session.transcript_path = path
    show_records(app, records)
    app.reasoning.add_note(
        f"Reopened session {path.stem} (read-only). Type an instruction to continue it."
    )
