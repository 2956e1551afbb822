"""The running session behind the app: shell, model, agent, transcript and terminal recording.

`Session` owns the core objects for one app and knows nothing of Textual or the app: the
app gives it a `SessionOptions`, an event callback (called from any thread) and an approver
(called from the agent's thread), and calls its blocking methods (`load_model`, `run_task`)
from worker threads. It is also the terminal pane's `TerminalBackend` (keys, Ctrl-C, size).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tmax_local import paths
from tmax_local.agent import harness
from tmax_local.agent.options import SessionOptions
from tmax_local.agent.resolve import check_local, load_backend
from tmax_local.errors import TmaxError

if TYPE_CHECKING:
    from tmax_local.agent.engine import EngineOptions
    from tmax_local.agent.loop import Agent
    from tmax_local.agent.protocols import ModelBackend
    from tmax_local.approval import Answer, ApprovalRequest, Gate
    from tmax_local.shell import AsciicastRecorder, PtyShell, ShellEvent
    from tmax_local.undo.checkpointer import SessionCheckpointer
    from tmax_local.undo.store import Change

__all__ = ["ModelInfo", "Session", "SessionApprover", "TqdmToStatus", "describe_engine"]


class SessionApprover(Protocol):
    """The agent's approver, plus `cancel()`: answer a pending request for the user."""

    def __call__(self, request: ApprovalRequest) -> Answer: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar shows of the loaded model."""

    name: str
    quant: str = ""
    backend: str = "CPU"
    layers: str = ""
    context_limit: int = 0


def describe_engine(engine: ModelBackend) -> ModelInfo:
    """Model, quant and backend of a loaded model, for the status bar."""
    from tmax_local.agent.remote import RemoteEngine

    if isinstance(engine, RemoteEngine):
        mode = "" if engine.prompt_mode == "tokens" else " · text prompts"
        return ModelInfo(
            name=engine.served_model,
            backend=f"remote {engine.endpoint.host}:{engine.endpoint.port}{mode}",
            context_limit=engine.context_limit,
        )
    llm = getattr(engine, "llm", None)
    if llm is None:  # scripted model
        return ModelInfo(
            name=engine.name, quant="", backend="scripted", context_limit=engine.context_limit
        )
    import llama_cpp

    meta = getattr(llm, "metadata", {}) or {}
    quant = _FILE_TYPES.get(str(meta.get("general.file_type", "")), "")
    name = meta.get("general.name") or engine.name
    requested = getattr(llm, "model_params", None)
    n_gpu = int(getattr(requested, "n_gpu_layers", 0)) if requested is not None else 0
    if llama_cpp.llama_supports_gpu_offload() and n_gpu != 0:
        kind = "Metal" if sys.platform == "darwin" else "CUDA"
        layers = offloaded_layers(n_gpu, meta)
        return ModelInfo(str(name), quant, kind, layers, engine.context_limit)
    return ModelInfo(str(name), quant, "CPU", "", engine.context_limit)


def offloaded_layers(requested: int, metadata: dict[str, str]) -> str:
    """"9/24 layers": how many of the model's blocks ``requested`` GPU layers put on the GPU
    (negative: all). Compared as numbers: "9" sorts after "24" as text."""
    total_text = next((v for k, v in metadata.items() if k.endswith(".block_count")), None)
    try:
        total = int(total_text) if total_text is not None else None
    except ValueError:
        total = None
    if total is None:
        return f"{requested if requested >= 0 else 'all'}/? layers"
    done = total if requested < 0 else min(requested, total)
    return f"{done}/{total} layers"


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

    def __init__(
        self,
        options: SessionOptions,
        on_event: Callable[[object], None],
        approver: SessionApprover,
        *,
        grammar: str | None = None,
    ) -> None:
        self.options = options
        self.on_event = on_event
        self.approver = approver
        self.grammar = grammar
        self.shell: PtyShell | None = None
        self.model: ModelBackend | None = None
        self.agent: Agent | None = None
        self.gate: Gate | None = None
        self.project_root: Path | None = None
        """Where the session started: writes are judged against it (and its rules file)."""
        self.recorder: AsciicastRecorder | None = None
        self.cast_path: Path | None = None
        self.transcript_path: Path | None = None
        self.mode = options.approve
        self.resumed_from: Path | None = None
        self.resumed_records: list[dict[str, Any]] = []
        self.checkpointer: SessionCheckpointer | None = None
        # Told (from the loading thread) when the model will not fit in RAM, and when the
        # terminal recording is rotated: the app shows these as notifications.
        self.on_warning: Callable[[str], None] | None = None

    def _warn(self, text: str) -> None:
        if self.on_warning is not None:
            self.on_warning(text)

    @property
    def model_ready(self) -> bool:
        return self.model is not None

    @staticmethod
    def sessions_dir() -> Path:
        return paths.sessions_dir()

    # -- the shell ---------------------------------------------------------------------
    def start_shell(
        self,
        *,
        rows: int,
        cols: int,
        on_output: Callable[[bytes], None],
        on_event: Callable[[ShellEvent], None],
    ) -> PtyShell:
        from tmax_local.agent.transcript import new_session_id
        from tmax_local.shell import AsciicastRecorder, CommandStarted, Output, PtyShell

        sandbox = self.options.shell_sandbox(allow_rules=self._allow_rules())
        shell = PtyShell(self.options.cwd, rows=rows, cols=cols, **sandbox)
        self.project_root = Path(shell.cwd)
        directory = self.sessions_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self.cast_path = directory / f"{new_session_id()}.cast"
        self.recorder = AsciicastRecorder(
            self.cast_path,
            cols=cols,
            rows=rows,
            title="tmax-local terminal",
            on_rotate=self._warn,
        )

        def forward(event: ShellEvent) -> None:
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

    def _allow_rules(self) -> bool:
        """Whether allow rules are in force (saved, project or added this session)."""
        from tmax_local.approval import Gate

        if self.gate is not None:
            return bool(self.gate.rules.allow)
        return bool(Gate.load(Path(self.options.cwd or Path.cwd()), self.mode).rules.allow)

    def sandbox_label(self) -> str:
        """For the status bar: ``sandbox workspace, no net``; empty when there is none."""
        shell = self.shell
        if shell is None or shell.sandbox is None:
            return ""
        net = "net" if shell.allow_network else "no net"
        return f"sandbox {shell.sandbox_mode.value}, {net}"

    def toggle_network(self) -> bool:
        """Allow/forbid the network in the sandbox (restarts bash: blocks while a command
        runs; call from a worker).  Returns the new setting."""
        shell = self.shell
        if shell is None or shell.sandbox is None:
            raise TmaxError(
                "the shell is not sandboxed: the network is not restricted", title="Sandbox off"
            )
        shell.set_sandbox(shell.sandbox_mode.value, allow_network=not shell.allow_network)
        return shell.allow_network

    def sandbox_for_mode(self) -> bool:
        """After an approval-mode change: commands that may now run unasked get the default
        sandbox (unless ``--sandbox`` chose).  Returns True when the shell changed."""
        shell = self.shell
        if shell is None or self.options.sandbox is not None or shell.sandbox is not None:
            return False
        from tmax_local.shell.sandbox import choose_mode

        mode = choose_mode(None, unattended=self.mode == "auto" or self._allow_rules())
        if mode.value == "off":
            return False
        shell.set_sandbox(mode.value, allow_network=self.options.allow_network)
        return True

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

    # -- the model ---------------------------------------------------------------------
    def load_model(self, progress: Callable[[str], None], *, fetch: bool = False) -> ModelInfo:
        """Resolve ``--model`` and load it (blocks; the app calls it from a worker thread).

        A model that would have to be downloaded or converted first raises
        `resolve.ModelNeedsFetch` unless ``fetch`` is true: the app asks the user first.
        """
        from tmax_local import download

        runtime = self.options.model
        if fetch:
            # The download reports bytes, rate and ETA through `download.reporting`; the
            # conversion's tqdm bars on stderr are read by `TqdmToStatus` (the app draws on
            # the real terminal, which is not sys.stderr, so nothing else is affected).
            progress("downloading / converting…")
            with (
                contextlib.redirect_stderr(TqdmToStatus(progress)),
                download.reporting(_DownloadStatus(progress)),
            ):
                resolved = runtime.resolve(progress=True)
        else:
            check_local(runtime.model, runtime.quant, runtime.revision)
            progress("resolving model…")
            resolved = runtime.resolve(progress=False)
        on_load = None
        if resolved.kind == "gguf":
            name = resolved.path.name
            progress(f"loading {name}…")
            on_load = _LoadStatus(progress, name)
        self.model = load_backend(
            resolved, self.engine_options(), on_progress=on_load, on_warning=self._warn
        )
        return describe_engine(self.model)

    def engine_options(self) -> EngineOptions:
        """The `EngineOptions` the model is loaded with."""
        return self.options.model.engine_options(grammar=self.grammar)

    def harness_config(self) -> harness.HarnessConfig:
        """The agent's limits (steps, command timeout, tokens per turn)."""
        return self.options.model.harness_config()

    # -- the agent ---------------------------------------------------------------------
    def _new_agent(self, transcript_path: Path | None = None) -> Agent:
        from tmax_local.agent.loop import Agent
        from tmax_local.agent.transcript import TranscriptWriter
        from tmax_local.approval import Gate

        if self.model is None or self.shell is None:
            raise TmaxError("the model and the shell must be ready first", title="Not ready")
        self.gate = Gate.load(self.project_root or Path(self.shell.cwd), self.mode)
        agent = Agent(
            self.model, self.shell, self.gate, approver=self.approver, config=self.harness_config()
        )
        if self.options.checkpoints:
            from tmax_local.undo.checkpointer import SessionCheckpointer

            if self.checkpointer is None:
                self.checkpointer = SessionCheckpointer(self.options.cwd or Path.cwd())
            agent.checkpointer = self.checkpointer
        path = transcript_path or self.sessions_dir() / f"{agent.session_id}.jsonl"
        agent.transcript = TranscriptWriter(path)
        self.transcript_path = path
        agent.subscribe(self.on_event)
        self.agent = agent
        return agent

    # -- undo ----------------------------------------------------------------------------
    @property
    def checkpoint_session(self) -> str | None:
        """The session id the current agent records its checkpoints under."""
        return self.agent.session_id if self.agent is not None else None

    def _undo(self) -> tuple[SessionCheckpointer, str]:
        if self.checkpointer is None or self.agent is None:
            raise TmaxError("no checkpoints in this session", title="Undo")
        return self.checkpointer, self.agent.session_id

    def undo_preview(self, checkpoint: str) -> tuple[Path, Change]:
        """(project root, what restoring ``checkpoint`` would change); blocks: call it from
        a worker thread."""
        ck, _session = self._undo()
        return ck.root, ck.preview(checkpoint)

    def undo_restore(self, checkpoint: str, step: int) -> tuple[str, str]:
        """Restore ``checkpoint`` (taken before ``step``); returns (the note for the agent,
        the undo label of this restore). Blocks: call it from a worker thread."""
        from tmax_local.undo.checkpointer import restore_note

        ck, session = self._undo()
        result, label = ck.restore(checkpoint, session, step)
        return restore_note(step, result.change), label

    def run_task(self, task: str) -> None:
        """Run the agent on a task (blocks; the app calls it from a worker thread)."""
        if self.resumed_records:
            self.continue_resumed(task)
            return
        agent = self._new_agent()
        try:
            agent.run(task)
        finally:
            _close_transcript(agent)

    # -- resuming ----------------------------------------------------------------------
    def reopen(self, session_file: Path | None) -> list[dict[str, Any]]:
        """Load ``session_file`` (default: the newest saved session) to continue it.
        Returns its transcript records for the app to show."""
        from tmax_local.agent.transcript import list_sessions, load_records

        if session_file is not None:
            if not Path(session_file).is_file():
                raise TmaxError(f"no session file {session_file}", title="Resume")
            path = Path(session_file)
        else:
            directory = self.sessions_dir()
            sessions = list_sessions(directory)
            if not sessions:
                raise TmaxError(f"no saved session in {directory}", title="Resume")
            path = sessions[0]
        records = load_records(path)
        self.resumed_from = path
        self.resumed_records = records
        self.transcript_path = path
        return records

    def continue_resumed(self, instruction: str) -> None:
        """Continue the reopened session with a new instruction from the user."""
        from tmax_local.agent.transcript import resume_input

        records, self.resumed_records = self.resumed_records, []
        conversation, pending, steps_done = resume_input(records, instruction)
        agent = self._new_agent(self.resumed_from)
        try:
            agent.resume(conversation, pending, steps_done)
        finally:
            _close_transcript(agent)

    # -- while it runs -----------------------------------------------------------------
    def queue_instruction(self, text: str) -> None:
        if self.agent is not None:
            self.agent.queue_instruction(text)

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.approver.cancel()

    def set_mode(self, mode: str) -> None:
        from tmax_local.approval.policy import check_mode

        self.mode = check_mode(mode)
        if self.gate is not None:
            self.gate.mode = self.mode

    def note_transcript(self, path: str | None) -> None:
        """The agent reported its transcript file (`SessionStarted`)."""
        self.transcript_path = Path(path) if path else None

    def export(self, directory: Path | None = None) -> list[Path]:
        """Write the session as Markdown and the terminal recording as .cast, into
        ``directory`` (default: the shell's working directory)."""
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


def _close_transcript(agent: Agent) -> None:
    if agent.transcript is not None:
        agent.transcript.close()


class _DownloadStatus:
    """Download progress (`tmax_local.download.Progress`) as status-bar texts, at most
    every 0.2 s: ``download 45% · 61.2 MB / 136.0 MB · 39.8 MB/s · ETA 0:01``."""

    def __init__(self, report: Callable[[str], None], min_interval_s: float = 0.2) -> None:
        self._report = report
        self._min = min_interval_s
        self._last = 0.0

    def __call__(self, desc: str, p: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self._min or p.done >= p.total:
            self._last = now
            self._report(f"download {p.fraction:.0%} · {p.text()}")


class _LoadStatus:
    """llama.cpp's load progress (0.0 … 1.0) as ``loading NAME… 42%`` (whole percents)."""

    def __init__(self, report: Callable[[str], None], name: str) -> None:
        self._report = report
        self._name = name
        self._shown = -1

    def __call__(self, fraction: float) -> None:
        pct = int(fraction * 100)
        if pct != self._shown:
            self._shown = pct
            self._report(f"loading {self._name}… {pct}%")


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
