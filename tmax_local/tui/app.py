"""The tmax-local app: reasoning on the left, the live terminal on the right.

`make_app(options)` is the one factory used by the CLI (`tmax_local.tui.launch`) and the
tests. The app is a view: `tui.session.Session` owns the model, shell, agent and
transcript; the agent runs in a worker thread and reports through its event callback
(collected by `EventPump`, drawn by `TmaxApp.handle_event`), asks through its approver
callback (`ApprovalBridge`, which blocks that thread until the user answers in the
approval bar), and runs commands in the `PtyShell` whose raw bytes the terminal pane
renders. Imports run one way: app → session / widgets → agent, shell, approval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from tmax_local.agent import events as ev
from tmax_local.agent.options import SessionOptions
from tmax_local.agent.resolve import ModelNeedsFetch
from tmax_local.approval import (
    AllowRule,
    Answer,
    ApprovalRequest,
    Approve,
    Edit,
    Reject,
    RunUnsandboxed,
)
from tmax_local.approval.policy import MODES
from tmax_local.approval.store import ProjectRules
from tmax_local.errors import ModelNotFound, TmaxError
from tmax_local.shell import CommandFinished, CommandStarted, InputWaitSuspected, ShellRestarted
from tmax_local.tui.approval_bar import ApprovalBar, approval_view, rule_preview
from tmax_local.tui.pump import ApprovalBridge, ApprovalNeeded, Drain, EventPump
from tmax_local.tui.reasoning import ReasoningPane
from tmax_local.tui.replay import show_records
from tmax_local.tui.screens import EditCommandScreen, HelpScreen, ReasonScreen, RuleScreen
from tmax_local.tui.session import ModelInfo, Session
from tmax_local.tui.status import StatusBar
from tmax_local.tui.terminal import TerminalPane
from tmax_local.tui.undo import start_undo

__all__ = ["TmaxApp", "TuiOptions", "make_app"]

PLACEHOLDER = "Describe a task and press Enter"


@dataclass
class TuiOptions:
    """Everything the app needs, resolved by the CLI (`tmax_local.tui.launch`) or a test."""

    session: SessionOptions = field(default_factory=SessionOptions)
    """The settings shared with `tmax-local run`: model, runtime, approval mode, cwd."""
    resume: bool = False
    """Reopen the last session (read-only; Enter on a new instruction continues it)."""
    session_file: Path | None = None
    """A specific transcript to reopen (implies resume)."""
    theme: str | None = None
    """Textual theme name."""
    task: str | None = None
    """Start on this task at once (the CLI's `--task`)."""
    grammar: str | None = None
    """GBNF grammar for every reply (tests force a tool call from a random tiny model)."""


def stop_answer(request: ApprovalRequest) -> Answer:
    """The answer given for the user when the run is stopped while the bar waits."""
    return Reject("The user stopped the agent.")


def describe_answer(answer: Answer) -> str:
    """The user's answer, in a few words, for the step's outcome line."""
    match answer:
        case Reject(reason=reason):
            return f"rejected ({reason})"
        case Edit():
            return "edited"
        case AllowRule(rules=rules):
            return "always allow " + ", ".join(f"`{r}`" for r in rules)
        case _:
            return type(answer).__name__.lower()


def missing_model_hint(err: TmaxError) -> str:
    """What the user can do about a model that cannot be loaded."""
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


class TmaxApp(App[int]):
    """tmax-local's terminal app."""

    TITLE = "tmax-local"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+t", "takeover", "Terminal"),
        Binding("ctrl+x", "stop", "Stop agent", priority=True),
        Binding("f3", "cycle_mode", "Mode"),
        Binding("f4", "toggle_network", "Network", show=False),
        Binding("ctrl+o", "export", "Export"),
        Binding("ctrl+z", "undo_step", "Undo step", show=False),
        Binding("f5", "fetch_model", "Get model"),
        Binding("shift+pageup", "terminal_page(1)", "Terminal history", show=False),
        Binding("shift+pagedown", "terminal_page(-1)", "Terminal history", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, options: TuiOptions) -> None:
        super().__init__()
        self.options = options
        self.mode: str = options.session.approve
        self.pump = EventPump(self)
        self.approver = ApprovalBridge(self, on_cancel=stop_answer)
        self.session = Session(
            options.session, self.pump.put, self.approver, grammar=options.grammar
        )
        self.events_seen: list[object] = []
        self.agent_running = False
        self.finished: ev.AgentFinished | None = None
        self.last_error: TmaxError | None = None
        self._context_warned = False
        self.pending_step = 0
        self.pending_request: ApprovalRequest | None = None
        self.pending_ignored: list[str] = []
        self.checkpoints: dict[int, str] = {}  # step -> checkpoint taken before its command
        if options.theme:
            self.theme = options.theme
        # Switches no user asks for, set on the instance before it runs by tests (pictures
        # of fixed states) and benchmarks: they are not options.
        self.ram_probe: Callable[[], str] | None = None
        """RAM figure for the status bar (default: this process's resident memory)."""
        self.start_shell_on_mount = True
        """Start the PTY shell on mount."""
        self.load_model_on_mount = True
        """Load the model on mount."""
        self.deterministic = False
        """No cursor blink, no animation: for snapshot tests."""

    # -- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="panes"):
            with Vertical(id="left"):
                yield Static("Reasoning", classes="pane-title")
                yield ReasoningPane(id="reasoning")
            with Vertical(id="right"):
                yield Static("Terminal", classes="pane-title", id="term-title")
                yield TerminalPane(id="terminal")
        yield ApprovalBar(id="approval")
        yield Input(placeholder=PLACEHOLDER, id="task")
        yield StatusBar(self.ram_probe, id="status")
        yield Footer()

    @property
    def reasoning(self) -> ReasoningPane:
        return self.query_one(ReasoningPane)

    @property
    def terminal(self) -> TerminalPane:
        return self.query_one(TerminalPane)

    @property
    def approval_bar(self) -> ApprovalBar:
        return self.query_one(ApprovalBar)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    def on_mount(self) -> None:
        if self.deterministic:
            self.animation_level = "none"
            self.query_one("#task", Input).cursor_blink = False
        model = self.options.session.model
        self.status.update_info(mode=self.mode, max_steps=model.max_steps, ctx=model.ctx)
        self.query_one("#task", Input).focus()
        if self.start_shell_on_mount:
            try:
                self.start_shell()
            except TmaxError as err:
                self.reasoning.add_note(f"{err.title}: {err.message}", level="error")
        self.ask_project_trust()
        if self.options.resume or self.options.session_file:
            self.load_resumed()
        if self.load_model_on_mount:
            self.load_model()

    # -- shell -------------------------------------------------------------------------
    def start_shell(self) -> None:
        pane = self.terminal
        self.session.start_shell(
            rows=pane.screen_model.lines,
            cols=pane.screen_model.columns,
            on_output=pane.feed_threadsafe,
            on_event=self.pump.put,
        )
        pane.backend = self.session
        pane.resize_terminal(pane.size)
        self.status.update_info(sandbox=self.session.sandbox_label())

    def ask_project_trust(self) -> None:
        """A repository's ``.tmax-local.toml`` rules apply only once the user trusts the
        file's exact contents: ask with a dialog listing them (``--trust-project`` trusts
        without asking); then say which rules are active, and from where."""
        from tmax_local.approval.store import load_saved_rules, read_project_rules, trust_project
        from tmax_local.approval.trust import describe_rules
        from tmax_local.tui.trust_screen import TrustScreen

        root = self.session.project_root or self.options.session.cwd or Path.cwd()
        try:
            project = read_project_rules(root)
            saved = load_saved_rules()
        except TmaxError as err:
            self.reasoning.add_note(f"{err.title}: {err.message}", level="error")
            return

        def show(project: ProjectRules | None) -> None:
            rules = saved + project.in_force if project is not None else saved
            if rules.allow or rules.deny:
                self.reasoning.add_note("Approval rules:\n" + "\n".join(describe_rules(rules)))

        if project is None or project.trusted or not project.rules.allow:
            show(project)
            return
        if self.options.session.trust_project:
            show(trust_project(project))
            return

        def answered(ok: bool | None) -> None:
            if ok:
                show(trust_project(project))
            else:
                self.reasoning.add_note(
                    f"{project.path}: its allow rules are ignored (not trusted)"
                )
                show(project)

        self.push_screen(TrustScreen(project), answered)

    # -- model loading -----------------------------------------------------------------
    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def load_model(self, fetch: bool = False) -> None:
        self.call_from_thread(self.status.update_info, loading="loading model…", state="idle")
        self.session.on_warning = self.warn_from_thread
        try:
            info = self.session.load_model(
                progress=lambda text: self.call_from_thread(self.status.update_info, loading=text),
                fetch=fetch,
            )
        except TmaxError as err:
            self.call_from_thread(self.show_model_error, err)
            return
        self.call_from_thread(self.model_loaded, info)

    def warn_from_thread(self, text: str) -> None:
        """A warning from the session (memory, recording rotated) as a notice; callable from
        any thread."""
        try:
            self.call_from_thread(
                self.notify, text, title="Warning", severity="warning", timeout=15
            )
        except RuntimeError:  # already on the app's thread
            self.notify(text, title="Warning", severity="warning", timeout=15)

    def model_loaded(self, info: ModelInfo) -> None:
        self.status.update_info(
            model=info.name,
            quant=info.quant,
            backend=info.backend,
            layers_offloaded=info.layers,
            loading="",
            ctx=info.context_limit or self.options.session.model.ctx,
        )
        if self.options.task and not self.agent_running:
            task, self.options.task = self.options.task, None
            self.start_task(task)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "fetch_model":  # offered only while the model waits for a download
            return isinstance(self.last_error, ModelNeedsFetch)
        return True

    def action_fetch_model(self) -> None:
        if self.session.model_ready:
            return
        self.reasoning.add_note("Downloading and converting the model…")
        self.last_error = None
        self.refresh_bindings()
        self.load_model(fetch=True)

    def show_model_error(self, err: TmaxError) -> None:
        self.last_error = err
        self.refresh_bindings()
        self.status.update_info(loading="no model", state="error")
        self.reasoning.add_note(f"{err.title}: {err.message}", level="error")
        hint = missing_model_hint(err)
        if hint:
            self.reasoning.add_note(hint, level="warning")

    # -- the agent ---------------------------------------------------------------------
    @on(Input.Submitted, "#task")
    def task_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        event.input.value = ""
        if self.agent_running:
            self.session.queue_instruction(text)
            self.reasoning.add_note(f"queued for the next turn: {text}")
            return
        self.start_task(text)

    def start_task(self, text: str) -> None:
        if not self.session.model_ready:
            self.reasoning.add_note("The model is not loaded yet; the task waits for it.")
            self.options.task = text
            return
        self.reasoning.add_task(text)
        self.agent_running = True
        self.query_one(
            "#task", Input
        ).placeholder = "Type a follow-up for the agent's next turn (Enter queues it)"
        self.finished = None
        self.status.update_info(state="thinking")
        self.run_agent(text)

    @work(thread=True, exclusive=True, group="agent", exit_on_error=False)
    def run_agent(self, task: str) -> None:
        self.session.run_task(task)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "model" and event.state == WorkerState.ERROR:
            # Not a TmaxError (those are shown by load_model): a bug or a llama.cpp failure.
            # Shown in the app, in one line, rather than lost or crashing the UI.
            err = event.worker.error
            try:
                self.status.update_info(loading="no model", state="error")
                self.reasoning.add_note(f"model loading failed: {err!r}", level="error")
            except NoMatches:  # the load failed because the app is closing: nothing to show
                return
        if event.worker.group == "agent" and event.state in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            self.agent_running = False
            try:
                self.drain_now()
                self.query_one("#task", Input).placeholder = PLACEHOLDER
            except NoMatches:  # the run ended because the app is closing: nothing to show
                return
            if event.state == WorkerState.ERROR:
                err = event.worker.error
                message = str(err) if isinstance(err, TmaxError) else repr(err)
                self.reasoning.add_note(f"agent error: {message}", level="error")
                self.status.update_info(state="error")

    def on_drain(self, message: Drain) -> None:
        for event in message.pump.drain(rearm=False):
            self.handle_event(event)
        self.set_timer(self.pump.quiet_s, self._pump_quiet_over)

    def _pump_quiet_over(self) -> None:
        events = self.pump.rearm()
        if events:
            for event in events:
                self.handle_event(event)
            self.set_timer(self.pump.quiet_s, self._pump_quiet_over)

    def drain_now(self) -> None:
        """Handle every event the agent has emitted so far (before acting on a request)."""
        for event in self.pump.drain(rearm=False):
            self.handle_event(event)

    def handle_event(self, event: object) -> None:
        """Show one agent or shell event (UI thread)."""
        self.events_seen.append(event)
        pane, status = self.reasoning, self.status
        match event:
            case ev.SessionStarted(transcript_path=path):
                self.checkpoints = {}
                self.session.note_transcript(path)
            case ev.StepStarted(step=step):
                pane.step_view(step)
                status.update_info(step=step, state="thinking")
            case ev.ReasoningDelta(step=step, text=text):
                pane.append(step, text)
            case ev.TurnStats():
                status.update_info(gen_tok_s=event.gen_tokens_per_s, cached=event.tokens_cached)
                self.note_context(event.context_used, event.context_limit)
            case ev.ToolCallProposed(step=step, command=command, ignored=ignored):
                self.pending_ignored = list(ignored)
                pane.flush()
                note = f"(+{len(ignored)} ignored)" if ignored else ""
                pane.step_view(step).set_command(command, note)
            case ev.FormatErrorRaised(step=step):
                pane.step_view(step).set_outcome(
                    "no valid bash call: format error sent back", good=False
                )
            case ev.ApprovalRequested(step=step):
                self.pending_step = step
            case ev.ApprovalAnswered(step=step, answer=answer):
                pane.step_view(step).set_outcome(f"answer: {describe_answer(answer)}")
            case ev.CommandRejected(step=step, observation=observation):
                pane.step_view(step).set_outcome(f"rejected: {observation}", good=False)
                status.update_info(state="thinking")
            case ev.CommandExecuted(step=step, command=command, result=result):
                view = pane.step_view(step)
                if view.command != command:
                    view.set_command(command, "(edited)")
                code = result.exit_code
                extra = " (timed out)" if result.timed_out else ""
                view.set_outcome(f"exit {code}{extra} · {event.duration_s:.1f}s", good=code == 0)
                status.update_info(state="thinking")
            case ev.CheckpointTaken(step=step, checkpoint=checkpoint):
                self.checkpoints[step] = checkpoint
            case ev.CheckpointFailed(step=step, message=message):
                pane.add_note(f"no checkpoint before step {step}: {message}", level="warning")
            case ev.InstructionAdded(text=text):
                pane.add_note(f"instruction added: {text}")
            case ev.ContextThinned():
                pane.add_note(event.message, level="warning")
                self.note_context(event.tokens_after, status.info.ctx)
            case ev.AgentFinished(reason=reason, message=message):
                pane.flush()
                self.finished = event
                self.agent_running = False
                self.approval_bar.hide()
                level = "error" if reason == "error" else "info"
                pane.add_note(f"finished ({reason}): {message}", level=level)
                status.update_info(state=f"done: {reason}")
            case InputWaitSuspected():
                self.update_terminal_title(waiting=True)
                self.notify(
                    "The command seems to wait for input: Ctrl+T to type into the terminal.",
                    title="Terminal",
                    timeout=8,
                )
            case CommandStarted():
                status.update_info(state="running")
            case CommandFinished():
                self.update_terminal_title()
            case ShellRestarted(reason=reason):
                pane.add_note(f"shell restarted: {reason}", level="warning")

    def note_context(self, used: int, limit: int) -> None:
        self.status.update_info(context_used=used, ctx=limit)
        if self.status.info.context_warning and not self._context_warned:
            self._context_warned = True
            pct = int(100 * used / limit)
            self.notify(
                f"Context {pct}% full ({used}/{limit} tokens): old output will be thinned soon.",
                title="Context filling up",
                severity="warning",
                timeout=8,
            )
            self.reasoning.add_note(f"context {pct}% full", level="warning")

    # -- approval ----------------------------------------------------------------------
    def on_approval_needed(self, message: ApprovalNeeded) -> None:
        self.drain_now()
        self.pending_request = message.request
        view = approval_view(message.request, self.pending_step, self.pending_ignored)
        self.status.update_info(state="waiting for approval")
        sandboxed = self.session.shell is not None and self.session.shell.sandbox is not None
        self.approval_bar.show(view, self.mode, sandboxed=sandboxed)

    def _answer(self, answer: Answer) -> None:
        self.approval_bar.hide()
        self.approver.answer(answer)
        self.status.update_info(state="running")
        self.query_one("#task", Input).focus()

    @on(ApprovalBar.Chosen)
    def approval_chosen(self, event: ApprovalBar.Chosen) -> None:
        view = event.view
        if event.choice == "approve":
            self._answer(Approve())
        elif event.choice == "edit":
            self.push_screen(EditCommandScreen(view.command), self._edited)
        elif event.choice == "reject":
            self.push_screen(ReasonScreen(view.command), self._rejected)
        elif event.choice == "always":
            if not view.rules:
                self.notify(
                    "No rule can cover this command; approve it once instead.", severity="warning"
                )
                return
            if self.pending_request is None:
                return
            parts = self.pending_request.analysis.parts
            self.push_screen(
                RuleScreen(
                    view.command, view.rules, preview=lambda rule: rule_preview(parts, rule)
                ),
                self._always,
            )
        elif event.choice == "unsandboxed":
            if self.approval_bar.sandboxed:
                self._answer(RunUnsandboxed())
        elif event.choice == "mode":
            self.action_cycle_mode()
            self.approval_bar.mode = self.mode
            self.approval_bar.refresh()

    def _edited(self, command: object) -> None:
        view = self.approval_bar.view
        if isinstance(command, str) and view is not None:
            self._answer(Edit(command))
        else:
            self.approval_bar.focus()

    def _rejected(self, reason: object) -> None:
        view = self.approval_bar.view
        if isinstance(reason, str) and view is not None:
            self._answer(Reject(reason))
        else:
            self.approval_bar.focus()

    def _always(self, result: object) -> None:
        view = self.approval_bar.view
        if isinstance(result, tuple) and view is not None:
            rules, scope = result
            self._answer(AllowRule(tuple(rules), scope))
        else:
            self.approval_bar.focus()

    # -- actions -----------------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_terminal_page(self, direction: int) -> None:
        pane = self.terminal
        pane.scroll_history(direction * max(1, pane.screen_model.lines - 1))

    def action_takeover(self) -> None:
        self.terminal.takeover = True

    def on_terminal_pane_takeover_changed(self, message: TerminalPane.TakeoverChanged) -> None:
        self.update_terminal_title()
        if not message.takeover:
            if self.approval_bar.active:
                self.approval_bar.focus()
            else:
                self.query_one("#task", Input).focus()

    def on_terminal_pane_alt_screen(self, message: TerminalPane.AltScreen) -> None:
        self.update_terminal_title(alt=message.active)

    def update_terminal_title(self, *, alt: bool | None = None, waiting: bool = False) -> None:
        title = self.query_one("#term-title", Static)
        if self.terminal.takeover:
            title.update("Terminal — keys go to the shell (Ctrl+] hands back)")
        elif waiting:
            title.update("Terminal — waiting for input? Ctrl+T to type")
        elif alt if alt is not None else self.terminal.screen_model.in_alt_screen:
            title.update("Terminal — full-screen program: Ctrl+T to take over")
        else:
            title.update("Terminal")

    def action_stop(self) -> None:
        if not self.agent_running:
            self.notify("The agent is not running.", timeout=3)
            return
        self.session.stop()
        self.approval_bar.hide()
        self.status.update_info(state="stopping")

    def action_cycle_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.session.set_mode(self.mode)
        self.status.update_info(mode=self.mode)
        self.notify(f"Approval mode: {self.mode}", timeout=3)
        self._sandbox_for_mode()

    @work(thread=True, group="sandbox", exit_on_error=False)
    def _sandbox_for_mode(self) -> None:
        """Commands may now run unasked: give the shell its default sandbox."""
        try:
            changed = self.session.sandbox_for_mode()
        except TmaxError as err:
            self.call_from_thread(self.notify, err.message, severity="error", timeout=8)
            return
        if changed:
            label = self.session.sandbox_label()
            self.call_from_thread(self.status.update_info, sandbox=label)
            self.call_from_thread(self.notify, f"Commands now run in a {label}", timeout=4)

    def action_toggle_network(self) -> None:
        self._toggle_network()

    @work(thread=True, group="sandbox", exit_on_error=False)
    def _toggle_network(self) -> None:
        """Allow/forbid the network in the sandbox (waits for a running command to end)."""
        try:
            self.session.toggle_network()
        except TmaxError as err:
            self.call_from_thread(self.notify, err.message, severity="warning", timeout=5)
            return
        label = self.session.sandbox_label()
        self.call_from_thread(self.status.update_info, sandbox=label)
        self.call_from_thread(self.notify, label, timeout=3)

    def action_undo_step(self) -> None:
        """Undo to before the focused step (or the latest one): see `tui.undo`."""
        start_undo(self)

    def action_export(self) -> None:
        try:
            paths = self.session.export()
        except TmaxError as err:
            self.notify(err.message, title=err.title, severity="error")
            return
        self.notify("Exported " + ", ".join(p.name for p in paths), title="Export", timeout=6)

    def load_resumed(self) -> None:
        try:
            records = self.session.reopen(self.options.session_file)
        except TmaxError as err:
            self.reasoning.add_note(f"{err.title}: {err.message}", level="error")
            return
        show_records(records, self.reasoning, self.status)
        path = self.session.resumed_from
        name = path.stem if path is not None else ""
        self.reasoning.add_note(
            f"Reopened session {name} (read-only). Type an instruction to continue it."
        )

    async def action_quit(self) -> None:
        self.session.stop()
        self.exit(0)

    def on_unmount(self) -> None:
        self.session.close()


def make_app(options: TuiOptions | None = None) -> TmaxApp:
    """The app factory used by `tmax-local` and by the tests."""
    return TmaxApp(options or TuiOptions())
