"""The tmax-local app: reasoning on the left, the live terminal on the right.

`make_app(options)` is the one factory used by the CLI (`tmax_local.tui.launch`) and the
tests. The app is a view: the agent (`tmax_local.agent`) runs in a worker thread and
reports through its event callback (collected by `EventPump`), asks through its approver
callback (`ApprovalBridge`, which blocks that thread until the user answers in the
approval bar), and runs commands in the `PtyShell` whose raw bytes the terminal pane
renders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from tmax_local.agent import events as ev
from tmax_local.agent.options import DEFAULT_QUANT, ModelOptions
from tmax_local.errors import TmaxError
from tmax_local.tui import bridge
from tmax_local.tui.approval_bar import ApprovalBar
from tmax_local.tui.pump import ApprovalBridge, ApprovalNeeded, Drain, EventPump
from tmax_local.tui.reasoning import ReasoningPane
from tmax_local.tui.screens import EditCommandScreen, HelpScreen, ReasonScreen, RuleScreen
from tmax_local.tui.status import StatusBar
from tmax_local.tui.terminal import TerminalPane

MODES = ("ask", "auto", "never-run")
PLACEHOLDER = "Describe a task and press Enter"


@dataclass
class TuiOptions:
    """Everything the app needs, resolved by the CLI (or a test)."""

    model: str | None = None
    """Model spec: a name (tmax-2b), a .gguf path, or `script:PATH` (scripted model)."""
    mode: str = "ask"
    """Approval mode: ask | auto | never-run."""
    cwd: Path | None = None
    """Working directory of the shell (default: the current directory)."""
    resume: bool = False
    """Reopen the last session (read-only; Enter on a new instruction continues it)."""
    session: Path | None = None
    """A specific transcript to reopen (implies resume)."""
    sessions_dir: Path | None = None
    """Where transcripts go (default: tmax_local.paths.sessions_dir())."""
    export_dir: Path | None = None
    """Where Ctrl+E writes the Markdown and .cast (default: the shell's working dir)."""
    max_steps: int = 64
    context_limit: int = 65536
    """Context size in tokens (the run command's ``--ctx``)."""
    n_gpu_layers: int | None = None
    quant: str = DEFAULT_QUANT
    revision: str | None = None
    threads: int | None = None
    flash_attn: bool | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    command_timeout: float = 120.0
    max_new_tokens: int = 16384
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    rules_file: Path | None = None
    """Saved allow rules (default: the approval module's rules.toml in the config dir)."""
    grammar: str | None = None
    """GBNF grammar for every reply (tests force a tool call from a random tiny model)."""
    theme: str | None = None
    ram_probe: Callable[[], str] | None = None
    """Injectable RAM figure (snapshots use a fixed one)."""
    shell_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the shell (tests set a fixed prompt)."""
    start_shell: bool = True
    """Start the PTY shell on mount (snapshot tests of pure layout may skip it)."""
    task: str | None = None
    """Start on this task at once (the CLI's `--task`)."""
    autoload: bool = True
    """Load the model on mount (snapshot tests of fixed states turn it off)."""
    deterministic: bool = False
    """No cursor blink, no animation, no clock-driven refresh: for snapshot tests."""

    def model_options(self) -> ModelOptions:
        """The model/runtime part, as the shared `tmax_local.agent.options` carrier."""
        return ModelOptions(
            model=self.model,
            quant=self.quant,
            revision=self.revision,
            gpu_layers=self.n_gpu_layers,
            threads=self.threads,
            ctx=self.context_limit,
            flash_attn=self.flash_attn,
            cache_type_k=self.cache_type_k,
            cache_type_v=self.cache_type_v,
            timeout=self.command_timeout,
            max_steps=self.max_steps,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
        )

    @classmethod
    def with_model_options(cls, model: ModelOptions, **app: Any) -> TuiOptions:
        """App options whose model/runtime part is ``model`` (the rest from ``app``)."""
        return cls(
            model=model.model,
            quant=model.quant,
            revision=model.revision,
            n_gpu_layers=model.gpu_layers,
            threads=model.threads,
            context_limit=model.ctx,
            flash_attn=model.flash_attn,
            cache_type_k=model.cache_type_k,
            cache_type_v=model.cache_type_v,
            command_timeout=model.timeout,
            max_steps=model.max_steps,
            max_new_tokens=model.max_new_tokens,
            temperature=model.temperature,
            top_p=model.top_p,
            seed=model.seed,
            **app,
        )


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
        Binding("ctrl+o", "export", "Export"),
        Binding("f5", "fetch_model", "Get model"),
        Binding("shift+pageup", "terminal_page(1)", "Terminal history", show=False),
        Binding("shift+pagedown", "terminal_page(-1)", "Terminal history", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, options: TuiOptions) -> None:
        super().__init__()
        self.options = options
        self.mode = options.mode
        self.pump = EventPump(self)
        self.approver = ApprovalBridge(self, on_cancel=bridge.stop_answer)
        self.session = bridge.Session(options, self.pump.put, self.approver)
        self.events_seen: list[Any] = []
        self.agent_running = False
        self.finished: ev.AgentFinished | None = None
        self.last_error: TmaxError | None = None
        self._context_warned = False
        self.pending_step = 0
        self.pending_request: Any = None
        self.pending_ignored: list[str] = []
        if options.theme:
            self.theme = options.theme

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
        yield StatusBar(self.options.ram_probe, id="status")
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
        if self.options.deterministic:
            self.animation_level = "none"
            self.query_one("#task", Input).cursor_blink = False
        self.status.update_info(
            mode=self.mode,
            max_steps=self.options.max_steps,
            context_limit=self.options.context_limit,
        )
        self.query_one("#task", Input).focus()
        if self.options.start_shell:
            try:
                self.start_shell()
            except TmaxError as err:
                self.reasoning.add_note(f"{err.title}: {err.message}", level="error")
        if self.options.resume or self.options.session:
            self.load_resumed()
        if self.options.autoload:
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

    # -- model loading -----------------------------------------------------------------
    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def load_model(self, fetch: bool = False) -> None:
        self.call_from_thread(self.status.update_info, loading="loading model…", state="idle")
        try:
            info = self.session.load_model(
                progress=lambda text: self.call_from_thread(self.status.update_info, loading=text),
                fetch=fetch,
            )
        except TmaxError as err:
            self.call_from_thread(self.show_model_error, err)
            return
        self.call_from_thread(self.model_loaded, info)

    def model_loaded(self, info: bridge.ModelInfo) -> None:
        self.status.update_info(
            model=info.name,
            quant=info.quant,
            backend=info.backend,
            layers_offloaded=info.layers,
            loading="",
            context_limit=info.context_limit or self.options.context_limit,
        )
        if self.options.task and not self.agent_running:
            task, self.options.task = self.options.task, None
            self.start_task(task)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "fetch_model":  # offered only while the model waits for a download
            return isinstance(self.last_error, bridge.ModelNeedsFetch)
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
        hint = bridge.missing_model_hint(err)
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
            self.status.update_info(loading="no model", state="error")
            self.reasoning.add_note(f"model loading failed: {err!r}", level="error")
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

    def handle_event(self, event: Any) -> None:
        self.events_seen.append(event)
        bridge.apply_event(self, event)

    def note_context(self, used: int, limit: int) -> None:
        self.status.update_info(context_used=used, context_limit=limit)
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
        view = bridge.approval_view(message.request, self.pending_step, self.pending_ignored)
        self.status.update_info(state="waiting for approval")
        self.approval_bar.show(view, self.mode)

    def _answer(self, answer: Any) -> None:
        self.approval_bar.hide()
        self.approver.answer(answer)
        self.status.update_info(state="running")
        self.query_one("#task", Input).focus()

    @on(ApprovalBar.Chosen)
    def approval_chosen(self, event: ApprovalBar.Chosen) -> None:
        view = event.view
        if event.choice == "approve":
            self._answer(bridge.approve(view))
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
            parts = self.pending_request.analysis.parts
            self.push_screen(
                RuleScreen(
                    view.command, view.rules, preview=lambda rule: bridge.rule_preview(parts, rule)
                ),
                self._always,
            )
        elif event.choice == "mode":
            self.action_cycle_mode()
            self.approval_bar.mode = self.mode
            self.approval_bar.refresh()

    def _edited(self, command: object) -> None:
        view = self.approval_bar.view
        if isinstance(command, str) and view is not None:
            self._answer(bridge.edit(view, command))
        else:
            self.approval_bar.focus()

    def _rejected(self, reason: object) -> None:
        view = self.approval_bar.view
        if isinstance(reason, str) and view is not None:
            self._answer(bridge.reject(view, reason))
        else:
            self.approval_bar.focus()

    def _always(self, result: object) -> None:
        view = self.approval_bar.view
        if isinstance(result, tuple) and view is not None:
            rules, scope = result
            self._answer(bridge.allow_rule(view, rules, scope))
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

    def action_export(self) -> None:
        try:
            paths = self.session.export(self.options.export_dir)
        except TmaxError as err:
            self.notify(err.message, title=err.title, severity="error")
            return
        self.notify("Exported " + ", ".join(p.name for p in paths), title="Export", timeout=6)

    def load_resumed(self) -> None:
        try:
            bridge.show_resumed(self)
        except TmaxError as err:
            self.reasoning.add_note(f"{err.title}: {err.message}", level="error")

    async def action_quit(self) -> None:
        self.session.stop()
        self.exit(0)

    def on_unmount(self) -> None:
        self.session.close()


def make_app(options: TuiOptions | None = None) -> TmaxApp:
    """The app factory used by `tmax-local` and by the tests."""
    return TmaxApp(options or TuiOptions())
