"""`tmax-local run TASK`: the agent in a plain terminal.

Reasoning streams to stdout; each command the policy wants approved is shown with its risk
labels and asked at a prompt: [a]pprove, [e]dit, [r]eject (with a reason the model reads),
a[l]ways allow (a rule for this session; ``L`` saves it). ``--approve auto`` runs everything
but high-risk commands without asking, ``never-run`` is a dry run. Ctrl-C stops the agent
(a running command is interrupted); a second Ctrl-C aborts.

Exit status: 0 when the agent submitted, 130 when stopped, 1 otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tmax_local.agent import events as ev
from tmax_local.agent.options import SessionOptions, add_session_arguments
from tmax_local.display import SafeText
from tmax_local.errors import ConfigError
from tmax_local.shell.env import GIT_SAFE_NOTICE

if TYPE_CHECKING:
    from tmax_local.approval import Answer, ApprovalRequest

__all__ = ["PromptApprover", "TerminalView", "add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", nargs="?", help="the task; '-' reads it from stdin")
    p.add_argument("--task-file", type=Path, help="read the task from this file")
    p.add_argument("--json", type=Path, dest="json_path", help="write the full transcript here")
    add_session_arguments(p)


def _read_task(args: argparse.Namespace) -> str:
    if args.task_file is not None:
        try:
            task = args.task_file.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read --task-file {args.task_file}: {err.strerror}") from None
    elif args.task == "-":
        task = sys.stdin.read()
    elif args.task:
        task = args.task
    else:
        raise ConfigError(
            'no task given: tmax-local run "TASK" (or --task-file FILE, or - for stdin)'
        )
    if not task.strip():
        raise ConfigError("the task is empty")
    return task


class TerminalView:
    """Prints agent events for a human reading a plain terminal."""

    def __init__(self, out: TextIO):
        self.out: TextIO = SafeText(out)  # type: ignore[assignment]  # model text: made visible
        self._mid_line = False
        self.sandbox: str | None = None  # the shell's sandbox, shown in the header
        self._reply = ""  # this step's text so far
        self._shown = 0  # how much of it was printed
        self._session = ""
        self._checkpoints = 0

    def _show_reasoning(self, delta: str) -> None:
        # Print the prose; the <tool_call> markup is replaced by the "$ command" line.
        self._reply += delta
        visible = self._reply.split("<tool_call>", 1)[0]
        if visible is self._reply or len(visible) == len(self._reply):
            for k in range(len("<tool_call>") - 1, 0, -1):  # hold back a partial tag
                if visible.endswith("<tool_call>"[:k]):
                    visible = visible[:-k]
                    break
        if len(visible) > self._shown:
            text = visible[self._shown :]
            self.out.write(text)
            self._shown = len(visible)
            self._mid_line = not text.endswith("\n")

    def __call__(self, e: ev.AgentEvent) -> None:
        w = self.out.write
        if isinstance(e, ev.SessionStarted):
            self._session = e.session_id
            w(f"── tmax-local · {e.model} · transcript {e.transcript_path}\n")
            w(f"── {GIT_SAFE_NOTICE}\n")
            if self.sandbox:
                w(f"── {self.sandbox}\n")
        elif isinstance(e, ev.StepStarted):
            self._reply, self._shown = "", 0
            w(f"\n── step {e.step} ──\n")
        elif isinstance(e, ev.ReasoningDelta):
            self._show_reasoning(e.text)
        elif isinstance(e, ev.TurnStats):
            self._newline()
            w(
                f"   [{e.tokens_generated} tokens, {e.gen_tokens_per_s:.1f} tok/s, "
                f"{e.tokens_evaluated} evaluated"
                + (f", {e.tokens_cached} cached" if e.tokens_cached is not None else "")
                + f", context {e.context_used}/{e.context_limit}]\n"
            )
        elif isinstance(e, ev.FormatErrorRaised):
            w("   ! no valid bash call in the reply (format error sent back)\n")
        elif isinstance(e, ev.ToolCallProposed):
            w(f"\n$ {e.command}\n")
            for cmd in e.ignored:
                w(f"   (further call ignored: {cmd.splitlines()[0] if cmd else ''})\n")
        elif isinstance(e, ev.CommandRejected):
            w(f"   not run: {e.observation}\n")
        elif isinstance(e, ev.CommandExecuted):
            body = e.observation
            w(body if len(body) < 4000 else body[:2000] + "\n…\n" + body[-1500:])
            w("\n")
        elif isinstance(e, ev.CheckpointTaken):
            self._checkpoints += 1
            if e.not_covered:
                shown = ", ".join(f"{p} ({why})" for p, why in e.not_covered[:5])
                more = f" and {len(e.not_covered) - 5} more" if len(e.not_covered) > 5 else ""
                w(f"   (not covered by checkpoints: {shown}{more})\n")
        elif isinstance(e, ev.CheckpointFailed):
            w(f"   ! no checkpoint: {e.message}\n")
        elif isinstance(e, ev.InstructionAdded):
            w(f"   (your instruction was added: {e.text})\n")
        elif isinstance(e, ev.ContextThinned):
            w(f"   ! {e.message}\n")
        elif isinstance(e, ev.AgentFinished):
            self._newline()
            w(f"\n── finished: {e.reason} · {e.message} ({e.steps} steps)\n")
            if self._checkpoints:
                w(
                    f"── undo: tmax-local checkpoints {self._session} · "
                    f"tmax-local restore {self._session} STEP\n"
                )
        self.out.flush()

    def _newline(self) -> None:
        if self._mid_line:
            self.out.write("\n")
            self._mid_line = False


class PromptApprover:
    """Asks at the terminal. Reads answers line by line from ``inp`` (stdin)."""

    def __init__(self, inp: TextIO, out: TextIO):
        self.inp, self.out = inp, SafeText(out)  # the command is shown as it will run
        self.waiting = False
        self.on_eof: Callable[[], None] | None = None  # input closed: the CLI stops the agent
        self.sandboxed = False  # offer "run unsandboxed" (the shell is confined)

    def _ask(self, prompt: str) -> str | None:
        self.out.write(prompt)
        self.out.flush()
        self.waiting = True
        try:
            line = self.inp.readline()
        finally:
            self.waiting = False
        return None if line == "" else line.rstrip("\n")

    def __call__(self, request: ApprovalRequest) -> Answer:
        from tmax_local.approval import AllowRule, Approve, Edit, Reject, RunUnsandboxed

        w = self.out.write
        w(f"\n? approve this command:\n  $ {request.command}\n")
        for label in request.labels:
            mark = "!!" if label.high_risk else " -"
            w(f"  {mark} {label.name}: {label.reason} ({label.text})\n")
        for reason in request.reasons:
            w(f"  · {reason}\n")
        rules = list(request.suggested_rules)
        for note in _suggestion_notes(request):
            w(f"  · {note}\n")
        while True:
            hint = f", a[l]ways allow `{'; '.join(rules)}` (L: save)" if rules else ""
            if self.sandboxed:
                hint += ", [u]nsandboxed (this once)"
            try:
                ans = self._ask(f"  [a]pprove, [e]dit, [r]eject{hint}? ")
            except KeyboardInterrupt:
                return Reject("the user stopped the agent")
            if ans is None:
                if self.on_eof is not None:
                    self.on_eof()
                return Reject("no answer (input closed)")
            choice = ans.strip()
            if choice in ("a", "y", "yes", "approve"):
                return Approve()
            if choice in ("e", "edit"):
                new = self._ask("  new command: ")
                return Edit(new or "")
            if choice in ("r", "n", "no", "reject"):
                why = self._ask("  reason (the model reads it): ")
                return Reject(why or "")
            if rules and choice in ("l", "L"):
                return AllowRule(tuple(rules), "saved" if choice == "L" else "session")
            if self.sandboxed and choice in ("u", "unsandboxed"):
                return RunUnsandboxed()
            others = (", l" if rules else "") + (", u" if self.sandboxed else "")
            w(f"  please answer a, e, r{others}\n")


def _suggestion_notes(request: ApprovalRequest) -> tuple[str, ...]:
    """Why "always allow" offers only exact rules (or none) for some parts."""
    from tmax_local.approval.rules import suggestion_notes

    return suggestion_notes(
        (pd.part, [lab.name for lab in pd.labels])
        for pd in request.decision.parts
        if pd.allowed_by is None
    )


class LoadPercent:
    """Model loading as ``loading model… 42%`` on one terminal line (nothing when ``out`` is
    not a terminal)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.shown = -1

    def __call__(self, fraction: float) -> None:
        pct = int(fraction * 100)
        if pct == self.shown or not self.out.isatty():
            return
        self.shown = pct
        self.out.write(f"\rloading model… {pct}%" + ("\n" if pct >= 100 else ""))
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    from tmax_local.agent.cli_trust import rules_for_run
    from tmax_local.agent.loop import Agent
    from tmax_local.agent.remote import RemoteEngine
    from tmax_local.agent.resolve import load_backend
    from tmax_local.agent.transcript import TranscriptWriter, load_records, summarize
    from tmax_local.approval import Gate, rules_path
    from tmax_local.paths import sessions_dir
    from tmax_local.shell import PtyShell

    task = _read_task(args)
    session = SessionOptions.from_args(args)
    cwd = (session.cwd or Path.cwd()).resolve()
    if not cwd.is_dir():
        raise ConfigError(f"--cwd {cwd} is not a directory")
    opts = session.model
    config = opts.harness_config()
    model = load_backend(
        opts.resolve(),
        opts.engine_options(),
        on_progress=LoadPercent(sys.stderr),
        on_warning=lambda text: print(f"tmax-local: warning: {text}", file=sys.stderr),
    )
    if isinstance(model, RemoteEngine):
        print(f"── {model.header()}", flush=True)
    stdin_for_answers = sys.stdin
    if args.task == "-" and session.approve == "ask":
        try:
            stdin_for_answers = open("/dev/tty", encoding="utf-8")  # noqa: SIM115
        except OSError:
            raise ConfigError(
                "the task came from stdin, so answers cannot: use --approve "
                "auto/never-run or pass the task as an argument"
            ) from None
    found = rules_for_run(
        cwd,
        trust_flag=session.trust_project,
        answers=stdin_for_answers if stdin_for_answers.isatty() else None,
        out=sys.stdout,
    )
    gate = Gate(session.approve, found.rules, cwd=cwd, rules_file=rules_path())
    approver = PromptApprover(stdin_for_answers, sys.stdout)
    view = TerminalView(sys.stdout)

    sandbox = session.shell_sandbox(allow_rules=bool(gate.rules.allow))
    shell = PtyShell(cwd, timeout=opts.timeout, protect_parent=True, **sandbox)
    view.sandbox = shell.sandbox.describe() if shell.sandbox else "sandbox off"
    approver.sandboxed = shell.sandbox is not None
    with shell:
        agent = Agent(model, shell, gate, approver=approver, config=config)
        if session.checkpoints:
            from tmax_local.undo.checkpointer import SessionCheckpointer

            agent.checkpointer = SessionCheckpointer(cwd)
        transcript = TranscriptWriter.in_dir(sessions_dir(), agent.session_id)
        agent.transcript = transcript
        agent.subscribe(view)
        approver.on_eof = agent.stop
        interrupts = 0

        def on_sigint(signum, frame):
            nonlocal interrupts
            interrupts += 1
            agent.stop()
            if interrupts > 1 or approver.waiting:
                raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            done = agent.run(task)
        finally:
            signal.signal(signal.SIGINT, previous)
            transcript.close()
            close = getattr(model, "close", None)
            if close is not None:
                close()
    if args.json_path is not None:
        import json

        data = summarize(load_records(transcript.path))
        data["transcript_path"] = str(transcript.path)
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    if done.reason == "submitted":
        return 0
    return 130 if done.reason == "stopped" else 1
