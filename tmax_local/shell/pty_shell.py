"""A persistent interactive bash in a pseudo-terminal that never hangs the caller.

How a command runs
------------------
bash starts as ``bash --rcfile <ours> --noprofile --noediting -i``: the user's
start-up files are not read, so behaviour is the same on every machine, and
there is no line editor (readline would echo and redraw what we type).

``run()`` writes the command to a private file, turns terminal echo off and
types one short line::

    __tmax_pre <nonce>; builtin . <file>; { __tmax_done $?; } 2>/dev/null

``__tmax_pre`` points stdin/stdout/stderr back at the terminal (a previous
``exec 1>&-`` cannot break the next command), restores sane terminal modes
with echo on (a program that prompts behaves as in a normal terminal) and
writes an invisible start marker; ``__tmax_done`` writes the end marker with
the exit status.  ``PROMPT_COMMAND`` runs ``__tmax_done`` too, for a line cut
short by a signal.  Markers are private OSC sequences::

    ESC ] 6973 ; <nonce> ; <exit status | S> ; <shell flags> BEL

The nonce is fresh and random for every command, so output that merely prints
a marker-looking string cannot end a command early, and only what lies
between the start and end markers becomes the model's text.  The command
itself is never echoed and can have any shape (several lines, heredocs,
trailing comments; unbalanced quotes are reported by bash as a syntax error).

Timeouts interrupt, terminate, then kill the terminal's foreground process
group; a shell that dies or is replaced (``exit``, ``exec``, ``kill -9 $$``,
``set -e`` with a failing command) is restarted in the same directory.

Known limits: environment, functions and options are lost when bash is
restarted; a ``cd`` in the very command that kills bash with SIGKILL is lost
(``exit`` keeps it, through an EXIT trap); after ``set -o vi``/``emacs`` bash
stops running ``PROMPT_COMMAND``, so a command interrupted there costs a restart;
commands run through ``.``, so ``$BASH_SOURCE`` names our file and a DEBUG trap
follows ``.``'s rules (``trap - DEBUG`` inside a command does not remove it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import psutil
import ptyprocess

from tmax_local.errors import TmaxError
from tmax_local.shell import guard, procs, sandbox
from tmax_local.shell.env import shell_environment
from tmax_local.shell.events import (
    AltScreenChanged,
    CommandFinished,
    CommandResult,
    CommandStarted,
    InputWaitSuspected,
    Output,
    ShellEvent,
    ShellRestarted,
)
from tmax_local.shell.secrets import protect_process
from tmax_local.shell.state import (
    SNAPSHOT_OPENS,
    TRAPS_OPENS,
    LiveState,
    ShellState,
    SnapshotError,
    epilogue,
    fingerprints,
    git_config_files,
    open_fds,
    parse_snapshot,
    sensitive_variable,
    snapshot_function,
)
from tmax_local.shell.text import DEFAULT_HEAD_CHARS, DEFAULT_TAIL_CHARS, TextCollector

TIMEOUT_EXIT_CODE = 124
# How long a new foreground group may stay an unexecuted copy of bash before a
# pending interrupt is sent to it anyway (a subshell never executes anything).
_EXEC_GRACE = 0.3
_log = logging.getLogger(__name__)

_MARK_INTRO = b"\x1b]6973;"
_MARK = re.compile(rb"\x1b\]6973;([0-9a-f]{16});(\d{1,3}|S);([a-zA-Z]*)\x07")
_MARK_TAIL = re.compile(rb"[0-9a-f]{0,16}(?:;(?:\d{0,3}|S)(?:;[a-zA-Z]{0,20})?)?")
_ALT_SCREEN = re.compile(rb"\x1b\[\?(?:1049|1047|47)([hl])")
# bash's notices that a background job ended ("[1]+  Done   sleep 1"): shell chatter
# the model never saw in training.  "Running" and "Stopped" lines stay: `jobs` prints them.
_JOB_NOTICE = re.compile(
    r"^\[\d+\][+-]? +(?:Done|Exit \d+|Killed|Terminated|Hangup|Interrupt|Quit|Aborted"
    r"|Broken pipe|Segmentation fault)(?: \(core dumped\))?(?: +|\(\w+\) +).*\n?",
    re.MULTILINE,
)
_SHELL_NAMES = {"bash", "sh", "dash", "zsh", "ksh", "mksh", "fish", "busybox", "ash"}

_RCFILE = r"""
unset HISTFILE OLDPWD
set +H +o history
shopt -u expand_aliases
builtin cd -- {cwd} 2>/dev/null
PS1='' PS2='' PS0='' PS4='+ '
__tmax_n={init_nonce}
# Aliases are expanded when these functions are defined (now, before any alias
# exists); `builtin printf` also beats a function named printf.  `exec` stays
# bare: `builtin exec` would undo its redirections.
__tmax_done() {{
    # $2, typed by run() only: write the state snapshot (tmax_local/shell/state.py)
    if [[ -n $2 ]]; then __tmax_snap {state_file} "$2" || __tmax_snapfail=$?; fi
    # bash turns aliases on after reading this file: off once, at the first prompt
    if [[ -z $__tmax_up ]]; then __tmax_up=1; builtin shopt -u expand_aliases; fi
    local __tmax_s=$1 __tmax_f=
    case $- in *x*) __tmax_f+=x ;; esac
    case $- in *v*) __tmax_f+=v ;; esac
    builtin set +xv
    exec </dev/tty >/dev/tty
    builtin printf '\033]6973;%s;%s;%s\007' "$__tmax_n" "$__tmax_s" "$__tmax_f" >/dev/tty
}}
__tmax_pre() {{
    __tmax_n=$1
    exec </dev/tty >/dev/tty 2>/dev/tty
    builtin command stty sane </dev/tty 2>/dev/null || :
    builtin printf '\033]6973;%s;S;\007' "$1" >/dev/tty
}}
PROMPT_COMMAND='{{ \__tmax_done $?; }} 2>/dev/null'
trap 'builtin printf "%s" "$PWD" >{cwd_file}' EXIT
readonly PROMPT_COMMAND
{snapshot}
readonly -f __tmax_done __tmax_pre __tmax_snap
__tmax_o0=$SHELLOPTS __tmax_b0=$BASHOPTS
__tmax_pcs=${{POSIXLY_CORRECT+1}} __tmax_pcv=${{POSIXLY_CORRECT-}}
POSIXLY_CORRECT=y
\trap -p >|{baseline_traps}
__tmax_snap {baseline_file} baseline
"""


class ShellClosed(TmaxError):
    title = "Shell closed"


@dataclass
class _Running:
    """Book-keeping for the command in flight."""

    command: str
    nonce: str
    collector: TextCollector
    started: float
    exit_code: int | None = None
    begun: bool = False  # bash has read the command line (start marker seen)
    finished: bool = False  # no more output is attributed to it
    waiting: bool = False
    wait_reported: bool = False
    alt_used: bool = False
    # interrupt() was called and no process group other than bash's has had its
    # SIGINT yet (see PtyShell._deliver_interrupt).
    interrupt_pending: bool = False
    bash_interrupted: bool = False  # bash's own group got that SIGINT already
    # The foreground group other than bash's that was first seen, and when.
    foreground_seen: tuple[int, float] | None = None


@dataclass
class _Bash:
    """One bash process and its reader thread."""

    proc: ptyprocess.PtyProcess
    cmdline: bytes | None
    reader: threading.Thread | None = None
    eof: bool = False
    pending: bytes = b""
    alt_tail: bytes = b""
    ready: bool = False
    killed: bool = False
    flags: str = ""
    nonces: set[str] = field(default_factory=set)
    early: bytes = b""  # what the terminal said before bash was ready (launcher errors)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def fd(self) -> int:
        return self.proc.fd


class PtyShell:
    """A persistent bash in a PTY.  See the package docstring for usage."""

    def __init__(
        self,
        cwd: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 120.0,
        rows: int = 40,
        cols: int = 120,
        env: Mapping[str, str] | None = None,
        allow_secrets: bool = False,
        head_chars: int = DEFAULT_HEAD_CHARS,
        tail_chars: int = DEFAULT_TAIL_CHARS,
        kill_grace: float = 1.0,
        input_wait_after: float = 0.5,
        start_timeout: float = 30.0,
        protect_parent: bool = False,
        sandbox_mode: str = "off",
        allow_network: bool = False,
        sandbox_writable: tuple[str, ...] = (),
    ) -> None:
        self.cwd = str(Path(cwd if cwd is not None else os.getcwd()).resolve())
        self._home_cwd = self.cwd
        self.timeout = timeout
        self.rows, self.cols = rows, cols
        self.env, self.withheld_env = shell_environment(env, allow_secrets=allow_secrets)
        # The app's own process: drop the withheld variables from it too, so the shell
        # cannot read them back through /proc/<our pid>/environ (shell/secrets.py).
        self.protect_parent = protect_parent
        self.head_chars, self.tail_chars = head_chars, tail_chars
        self.kill_grace = kill_grace
        self.input_wait_after = input_wait_after
        self.start_timeout = start_timeout
        self._cond = threading.Condition()
        self._run_lock = threading.Lock()
        self._subscribers: list[Callable[[ShellEvent], None]] = []
        self._bash: _Bash | None = None
        self._current: _Running | None = None
        self._last_output = time.monotonic()
        self._alt_active = False
        self._closed = False
        self._workdir: str | None = None
        # The snapshot files, watched for writes other than the epilogue's (guard.py);
        # None where inotify is missing.  The start-up snapshot is read once, at start.
        self._guard: guard.SnapshotFiles | None = None
        self._watched = False  # a guard has armed once in this shell
        self._unwatched: str | None = None  # why watching stopped working since
        self._baseline: ShellState | None = None
        # Live state (see tmax_local/shell/state.py): the token typed with the last
        # command, and how much user input there had been when it was typed.
        self._state_token: str | None = None
        self._input_count = 0
        self._state_input_count = -1
        self._quiet = False
        # Facts read from outside bash when it started: its file descriptors, and the
        # config files git reads (see ShellState.fds / .files).
        self._outside: dict[str, Any] = {
            "files": fingerprints(git_config_files(self.env)),
            "fds": {},
        }
        self._unsandboxed: PtyShell | None = None  # the fresh shell of run_unsandboxed()
        self.sandbox_mode = sandbox.SandboxMode(sandbox_mode)
        self.allow_network = allow_network
        self.sandbox_writable = tuple(sandbox_writable)
        self.sandbox: sandbox.SandboxPolicy | None = None
        if self.sandbox_mode is not sandbox.SandboxMode.OFF:
            self.sandbox = self._sandbox_policy()
            try:
                sandbox.require_support(self.sandbox)
            except sandbox.SandboxUnavailable:
                self.close()
                raise
            self.env["TMPDIR"] = self.sandbox.tmpdir

    def _sandbox_policy(self) -> sandbox.SandboxPolicy:
        control = os.path.dirname(self._script_path())
        tmpdir = os.path.join(control, "tmp")
        os.makedirs(tmpdir, exist_ok=True)
        home = self.env.get("HOME") or os.path.expanduser("~")
        return sandbox.SandboxPolicy(
            self.sandbox_mode,
            project=self._home_cwd,
            tmpdir=tmpdir,
            home=home,
            allow_network=self.allow_network,
            # bash itself writes here after every command (its directory, the live-state
            # snapshot): nothing in it is trusted beyond what the shell could say anyway.
            writable=(control, *self.sandbox_writable),
        )

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> Self:
        """Start bash (idempotent).  Raises TmaxError if it cannot start."""
        with self._run_lock:
            if self._closed:
                raise ShellClosed("the shell has been closed")
            if self._bash is None:
                if self.protect_parent:
                    protect_process(self.withheld_env)
                self._spawn(self.cwd)
        return self

    def close(self) -> None:
        """Stop bash and every process left in its session."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            bash = self._bash
        if bash is not None:
            self._kill_bash(bash)
        if self._guard is not None:
            self._guard.close()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """Pid of the current bash (it changes when the shell is restarted)."""
        return self._bash.pid if self._bash else None

    @property
    def alt_screen(self) -> bool:
        return self._alt_active

    # -- events ----------------------------------------------------------------
    def subscribe(self, callback: Callable[[ShellEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        with self._cond:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._cond:
                self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe

    def _publish(self, event: ShellEvent) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop the reader
                _log.exception(
                    "shell event subscriber %r failed on %s", callback, type(event).__name__
                )

    # -- user interaction ------------------------------------------------------
    def send_input(self, data: bytes) -> None:
        """Type ``data`` into the terminal (answer a prompt, quit ``less``...)."""
        fresh = self._unsandboxed
        if fresh is not None:
            fresh.send_input(data)
            return
        self._input_count += 1  # the user may have run commands: re-read the state
        self._type(data)

    def _type(self, data: bytes) -> None:
        bash = self._require_bash()
        view = memoryview(data)
        while view:
            written = os.write(bash.fd, view)
            view = view[written:]

    def interrupt(self) -> None:
        """Send SIGINT to the terminal's foreground process group (like Ctrl-C).

        While a command runs, the request belongs to that command: if it comes
        before bash has started the command (just after ``CommandStarted``), or
        while bash is still between forking a program and handing it the
        terminal, it is kept and delivered by ``run()`` as soon as the command
        has begun and again to the first program that holds the terminal, so
        it is never lost on a bash that is only reading its input line.
        """
        fresh = self._unsandboxed
        if fresh is not None:
            fresh.interrupt()
            return
        bash = self._require_bash()
        with self._cond:
            running = self._current
            if running is not None and not running.finished:
                running.interrupt_pending = True
                running.bash_interrupted = False
                self._deliver_interrupt(bash, running)
                return
        try:
            os.killpg(os.tcgetpgrp(bash.fd), signal.SIGINT)
        except OSError:
            pass

    def resize(self, rows: int, cols: int) -> None:
        """Change the terminal size (the foreground program gets SIGWINCH)."""
        self.rows, self.cols = rows, cols
        bash = self._bash
        if bash is not None:
            try:
                bash.proc.setwinsize(rows, cols)
            except OSError:
                pass

    def _require_bash(self) -> _Bash:
        if self._closed or self._bash is None:
            raise ShellClosed("the shell is not running")
        return self._bash

    # -- running commands ------------------------------------------------------
    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run ``command`` and block until it finishes, times out or kills the shell."""
        limit = self.timeout if timeout is None else timeout
        with self._run_lock:
            if self._closed:
                raise ShellClosed("the shell has been closed")
            restarted = False
            if self._bash is None:
                self._spawn(self.cwd)
            elif not self._alive(self._bash):
                self._restart("the shell had exited")
            elif self._workdir is not None and not os.path.isdir(self._workdir):
                # bash writes its snapshot to paths fixed when it started: a bash whose
                # private directory is gone writes none, and the watch on a new directory
                # would count only what others write there
                self._restart("the shell's private directory was removed")
            bash = self._bash
            assert bash is not None
            nonce = secrets.token_hex(8)
            bash.nonces.add(nonce)
            script = command if command.endswith("\n") else command + "\n"
            if bash.flags:
                script = f"{{ set -{bash.flags}; }} 2>/dev/null\n{script}"
            path = self._script_path()
            Path(path).write_text(script, encoding="utf-8", errors="surrogateescape")
            running = _Running(
                command, nonce, TextCollector(self.head_chars, self.tail_chars), time.monotonic()
            )
            with self._cond:
                self._current = running
                self._last_output = time.monotonic()
            quiet = self._quiet
            if not quiet:
                self._publish(CommandStarted(command))
            self._prepare_tty(bash)
            token = secrets.token_hex(8)
            self._state_token, self._state_input_count = token, self._input_count
            self._arm_state_files()
            done = epilogue(
                _quote(self._state_file()), _quote(self._state_file() + "-traps"), token
            )
            self._type(_command_line(nonce, path, done))

            timed_out = False
            exit_code: int | None = None
            deadline = running.started + limit
            next_probe = 0.0
            while True:
                with self._cond:
                    if self._closed:
                        raise ShellClosed("the shell was closed while a command ran")
                    if running.exit_code is not None:
                        exit_code = running.exit_code
                        break
                    self._cond.wait(0.05)
                    if running.exit_code is not None:
                        continue
                    self._deliver_interrupt(bash, running)
                if not self._alive(bash):
                    exit_code = self._shell_died(bash)
                    restarted = True
                    break
                self.cwd = procs.cwd_of(bash.pid) or self.cwd
                now = time.monotonic()
                if now >= deadline:
                    timed_out = True
                    exit_code, restarted = self._stop_foreground(bash, running)
                    break
                quiet = now - self._last_output >= self.input_wait_after
                if running.begun and quiet and now >= next_probe:
                    next_probe = now + 0.2
                    if self._probe_input_wait(bash, running):
                        exit_code = 0
                        restarted = True
                        self._restart("the shell was replaced by an interactive shell (exec)")
                        break

            with self._cond:
                running.finished = True
                if self._current is running:
                    self._current = None
            running.collector.finish()
            if not restarted and self._bash is bash:
                self.cwd = procs.cwd_of(bash.pid) or self.cwd
            if self._alt_active:
                # The program died without leaving the alternate screen.
                self._alt_active = False
                self._publish(AltScreenChanged(False))
            # bash names our script file in its messages; show them as `bash -c` would.
            output = running.collector.text().replace(f"{path}: ", "")
            output = _JOB_NOTICE.sub("", output)
            notes: list[str] = []
            if self.sandbox is not None:
                notes = sandbox.explain_denials(output, self.sandbox, self.cwd)
            if notes:
                sep = "\n" if output and not output.endswith("\n") else ""
                output += sep + "\n".join(notes) + "\n"
            result = CommandResult(
                command=command,
                exit_code=TIMEOUT_EXIT_CODE if timed_out else exit_code,
                output=output,
                timed_out=timed_out,
                restarted=restarted,
                waiting_for_input=running.waiting,
                alt_screen_used=running.alt_used,
                duration_s=time.monotonic() - running.started,
                dropped_chars=running.collector.total_dropped(),
                sandbox_denials=tuple(notes),
            )
        if not quiet:
            self._publish(CommandFinished(result))
        return result

    # -- live state ----------------------------------------------------------------
    def live_state(self) -> LiveState:
        """The shell's state now and when it started (`tmax_local.shell.state`).

        The snapshot written after the last command is used when it carries that
        command's token and the user has typed nothing since; otherwise a silent ``:``
        is run first to take a fresh one.  Raises `SnapshotError` when none can be read.
        """
        if not self._state_fresh():
            self._quiet = True
            try:
                self.run(":", timeout=10)
            finally:
                self._quiet = False
        if not self._state_fresh():
            if self._unwatched is not None:
                raise SnapshotError(f"the shell's state is not believed: {self._unwatched}")
            raise SnapshotError("the shell's state could not be read")
        if self._baseline is None:
            raise SnapshotError("the shell's state at start could not be read")
        base = replace(self._baseline, **self._outside)
        now = self._read_state(self._state_file(), self._state_token)
        bash = self._bash
        now = replace(
            now,
            fds=open_fds(bash.pid) if bash is not None else {},
            files=fingerprints(git_config_files(self.env)),
        )
        return LiveState(now, base, self.cwd)

    def _state_fresh(self) -> bool:
        if self._bash is None or self._state_token is None:
            return False
        if self._input_count != self._state_input_count:
            return False
        try:
            data = self._read_guarded(self._state_file())
        except SnapshotError:
            return False
        return data.endswith(f"END\0{self._state_token}\0".encode())

    def _arm_state_files(self) -> None:
        """Before a command: fresh, empty snapshot files, watched where inotify is there.

        Once watching has worked in this shell, a failure to watch (its private directory
        removed and made anew, inotify's limits used up by another process) is no reason to
        trust the files less guarded: until watching works again, the snapshot is refused."""
        state = self._state_file()
        paths = {state: SNAPSHOT_OPENS, f"{state}-traps": TRAPS_OPENS}
        if self._guard is not None and not self._guard.watches(state):
            self._guard.close()  # the private directory was made anew: new paths
            self._guard = None
        try:
            if self._guard is None and guard.available():
                self._guard = guard.SnapshotFiles(paths)
            if self._guard is not None:
                self._guard.arm()
                self._watched, self._unwatched = True, None
                return
        except OSError as err:
            if self._guard is not None:
                self._guard.close()
                self._guard = None
            if self._watched:  # else never watched here (no O_TMPFILE, say): the token
                self._unwatched = f"its files can no longer be watched ({err})"
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _read_guarded(self, path: str) -> bytes:
        try:
            if self._guard is not None and self._guard.watches(path):
                return self._guard.read(path)
            state = self._state_file()
            if self._unwatched is not None and path in (state, f"{state}-traps"):
                raise SnapshotError(f"the shell's state is not believed: {self._unwatched}")
            return Path(path).read_bytes()
        except guard.Tampered as err:
            raise SnapshotError(f"the shell's state files were changed: {err}") from None
        except OSError as err:
            raise SnapshotError(f"the shell's state could not be read: {err}") from None

    def _read_state(self, path: str, token: str | None) -> ShellState:
        data = self._read_guarded(path)
        traps = self._read_guarded(path + "-traps").decode("utf-8", errors="replace")
        return parse_snapshot(data, token=token, traps=traps)

    def _state_file(self) -> str:
        return os.path.join(os.path.dirname(self._script_path()), "state")

    def _baseline_file(self) -> str:
        return os.path.join(os.path.dirname(self._script_path()), "state-baseline")

    def run_unsandboxed(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run one (user-approved) command outside the sandbox.

        It runs in a fresh bash without the sandbox, started in this shell's
        current directory with its exported variables; changes it makes to
        the directory or variables do not come back.  Events are published as
        for :meth:`run`; the result's output ends with a note saying all this.
        """
        if self.sandbox is None:
            return self.run(command, timeout)
        env = self._unsandboxed_env()
        fresh = PtyShell(
            self.cwd,
            timeout=self.timeout if timeout is None else timeout,
            rows=self.rows,
            cols=self.cols,
            env=env,
            head_chars=self.head_chars,
            tail_chars=self.tail_chars,
            kill_grace=self.kill_grace,
            input_wait_after=self.input_wait_after,
        )
        fresh._subscribers = self._subscribers
        try:
            fresh.start()
            with self._cond:
                self._unsandboxed = fresh
            result = fresh.run(command, timeout)
        finally:
            with self._cond:
                self._unsandboxed = None
            fresh.close()
        note = (
            "[sandbox] this command ran outside the sandbox (approved by the user), in a"
            " fresh bash with the same directory and exported variables; its cd/export"
            " changes do not carry over"
        )
        sep = "\n" if result.output and not result.output.endswith("\n") else ""
        return dataclasses.replace(result, output=result.output + sep + note + "\n")

    def set_sandbox(self, mode: str, *, allow_network: bool | None = None) -> None:
        """Change the sandbox (mode and/or network) between commands.

        Landlock cannot be relaxed in place, so a running bash is replaced by a
        new one under the new rules, in the same directory and with the same
        exported variables (functions, aliases and unexported variables are
        lost, as on any restart; a ``ShellRestarted`` event says so).
        """
        new_mode = sandbox.SandboxMode(mode)
        network = self.allow_network if allow_network is None else allow_network
        if new_mode is self.sandbox_mode and network == self.allow_network:
            return
        running = self._bash is not None and self._alive(self._bash)
        exported = self.exported_env() if running else None
        with self._run_lock:
            if self._closed:
                raise ShellClosed("the shell has been closed")
            old = (self.sandbox_mode, self.allow_network, self.sandbox)
            self.sandbox_mode, self.allow_network = new_mode, network
            self.sandbox = None
            if new_mode is not sandbox.SandboxMode.OFF:
                policy = self._sandbox_policy()
                try:
                    sandbox.require_support(policy)
                except sandbox.SandboxUnavailable:
                    self.sandbox_mode, self.allow_network, self.sandbox = old
                    raise
                self.sandbox = policy
            if exported is not None:
                self.env = exported
            if self.sandbox is not None:
                self.env["TMPDIR"] = self.sandbox.tmpdir
            if self._bash is not None:
                what = self.sandbox.describe() if self.sandbox else "sandbox off"
                self._restart(f"the shell was restarted for the new sandbox setting ({what})")

    def exported_env(self) -> dict[str, str]:
        """The variables the shell exports right now (asked quietly, no events)."""
        policy_tmp = self.sandbox.tmpdir if self.sandbox is not None else None
        folder = policy_tmp or os.path.dirname(self._script_path())
        path = os.path.join(folder, f".tmax-env-{secrets.token_hex(6)}")
        self._quiet = True  # no CommandStarted/Finished; the output goes to the file
        try:
            self.run(f"\\command env -0 >| {_quote(path)}", timeout=10)
        finally:
            self._quiet = False
        try:
            data = Path(path).read_bytes()
        except OSError:
            return dict(self.env)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        env: dict[str, str] = {}
        for item in data.split(b"\0"):
            name, sep, value = item.partition(b"=")
            if sep and name and not name.startswith(b"BASH_FUNC_"):
                env[os.fsdecode(name)] = os.fsdecode(value)
        return env

    def _unsandboxed_env(self) -> dict[str, str]:
        """The exported variables for a command run outside the sandbox, except that
        variables that change what programs run (``LD_PRELOAD``, ``PYTHON*``, ``GIT_*``,
        ``BASH_ENV``, pagers...: `state.sensitive_variable`) keep the values the shell
        started with: the file they are read from is writable inside the sandbox."""
        env = {k: v for k, v in self.exported_env().items() if not sensitive_variable(k)}
        env.update({k: v for k, v in self.env.items() if sensitive_variable(k)})
        return env

    def _cwd_file(self) -> str:
        """Where bash's EXIT trap leaves its last directory (for a restart)."""
        return os.path.join(os.path.dirname(self._script_path()), "cwd")

    def _script_path(self) -> str:
        if self._workdir is None or not os.path.isdir(self._workdir):
            self._workdir = tempfile.mkdtemp(prefix="tmax-shell-")
        return os.path.join(self._workdir, "command.sh")

    @staticmethod
    def _prepare_tty(bash: _Bash) -> None:
        """Canonical mode, echo off: the line we type is read whole and never shown."""
        try:
            attrs = termios.tcgetattr(bash.fd)
        except termios.error:
            return
        attrs[0] |= termios.ICRNL
        attrs[3] |= termios.ICANON | termios.ISIG | termios.IEXTEN
        attrs[3] &= ~(termios.ECHO | termios.ECHONL)
        termios.tcsetattr(bash.fd, termios.TCSANOW, attrs)

    # -- watching a running command ------------------------------------------
    def _probe_input_wait(self, bash: _Bash, running: _Running) -> bool:
        """Flag a terminal read; return True if bash itself was replaced by another shell."""
        try:
            pgrp = os.tcgetpgrp(bash.fd)
        except OSError:
            return False
        members = procs.group_members(pgrp, bash.pid)
        if not any(procs.blocked_on_tty_read(pid) for pid in members):
            return False
        if procs.cmdline(bash.pid) != bash.cmdline:
            try:
                name = psutil.Process(bash.pid).name()
            except psutil.Error:
                name = ""
            if name in _SHELL_NAMES:
                return True
        running.waiting = True
        if not running.wait_reported:
            running.wait_reported = True
            self._publish(InputWaitSuspected(running.command))
        return False

    def _deliver_interrupt(self, bash: _Bash, running: _Running) -> None:
        """Send a pending interrupt where it takes effect (caller holds ``_cond``).

        Nothing is sent before the start marker: a SIGINT then reaches a bash
        that is reading its input line, which drops it and goes on to run the
        command.  Once the command has begun, a program holding the terminal
        gets the SIGINT and the request is done.  If bash holds the terminal,
        its group gets one SIGINT (it aborts a builtin or loop, and remembers
        it while it starts a program), and the request stays pending so the
        program bash may be starting gets it as soon as it holds the terminal.

        A child of bash takes the terminal before it restores default signal
        handling and executes the program: a SIGINT in between only sets bash's
        own flag in the child and is lost when it executes.  So a new group is
        signalled once its processes have executed something other than our
        bash, or, for subshells that never do, after a short grace period.
        """
        if not running.interrupt_pending or not running.begun or running.finished:
            return
        try:
            pgrp = os.tcgetpgrp(bash.fd)
        except OSError:
            return
        if pgrp <= 0:
            return
        if pgrp != bash.pid:
            now = time.monotonic()
            if running.foreground_seen is None or running.foreground_seen[0] != pgrp:
                running.foreground_seen = (pgrp, now)
            settled = now - running.foreground_seen[1] >= _EXEC_GRACE
            if not settled:
                members = procs.group_members(pgrp, bash.pid)
                settled = bool(members) and all(
                    procs.cmdline(pid) not in (bash.cmdline, None) for pid in members
                )
            if settled:
                _signal_group(pgrp, signal.SIGINT)
                running.interrupt_pending = False
        elif not running.bash_interrupted:
            _signal_group(pgrp, signal.SIGINT)
            running.bash_interrupted = True

    def _stop_foreground(self, bash: _Bash, running: _Running) -> tuple[int, bool]:
        """Interrupt, terminate, then kill the foreground job.  Returns (exit code, restarted)."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            try:
                pgrp = os.tcgetpgrp(bash.fd)
            except OSError:
                pgrp = -1
            if pgrp > 0:
                if pgrp == bash.pid:  # bash leads its own process group
                    # bash itself is in the foreground (a builtin, a loop, `read`):
                    # an interactive bash survives SIGINT and ignores SIGTERM.
                    if sig == signal.SIGKILL:
                        for pid in procs.group_members(pgrp, bash.pid):
                            if pid != bash.pid:
                                _signal(pid, sig)
                    else:
                        _signal_group(pgrp, sig)
                else:
                    _signal_group(pgrp, sig)
            if self._wait_finished(bash, running, self.kill_grace):
                break
        with self._cond:
            code = running.exit_code
        if code is not None:
            return code, False
        if self._alive(bash):
            self._kill_bash(bash)
            self._restart("the shell did not recover from a timeout")
            return TIMEOUT_EXIT_CODE, True
        code = self._shell_died(bash)
        return code, True

    def _wait_finished(self, bash: _Bash, running: _Running, seconds: float) -> bool:
        end = time.monotonic() + seconds
        with self._cond:
            while running.exit_code is None:
                left = end - time.monotonic()
                if left <= 0 or not self._alive(bash):
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    # -- shell processes -------------------------------------------------------
    def _spawn(self, cwd: str) -> None:
        bash_path = shutil.which("bash", path=self.env.get("PATH")) or shutil.which("bash")
        if bash_path is None:
            raise TmaxError("bash was not found on PATH; the agent's shell needs it")
        init = secrets.token_hex(8)
        rcfile = os.path.join(os.path.dirname(self._script_path()), "bashrc")
        cwd_file = self._cwd_file()
        # Emptied, not removed: a sandboxed bash may write this one file only.
        with open(cwd_file, "w", encoding="utf-8"):
            pass
        quoted_cwd_file = _quote(cwd_file)
        Path(rcfile).write_text(
            _RCFILE.format(
                init_nonce=init,
                cwd_file=quoted_cwd_file,
                cwd=_quote(cwd),
                state_file=_quote(self._state_file()),
                baseline_file=_quote(self._baseline_file()),
                baseline_traps=_quote(self._baseline_file() + "-traps"),
                snapshot=snapshot_function(),
            ),
            encoding="utf-8",
        )
        if not os.path.isdir(cwd):
            raise TmaxError(f"cannot start the shell: {cwd} is not a directory")
        # Through the launcher: default signal dispositions, an empty signal
        # mask and, when asked for, the sandbox (kept by every restart).
        command = [bash_path, "--rcfile", rcfile, "--noprofile", "--noediting", "-i"]
        try:
            with sandbox.launch(self.sandbox, command) as launch:
                # bash changes into `cwd` itself (rc file): ptyprocess's own chdir runs
                # in the forked child outside its error handling.
                proc = ptyprocess.PtyProcess.spawn(
                    launch.argv,
                    env=self.env,
                    dimensions=(self.rows, self.cols),
                    echo=False,
                    pass_fds=launch.pass_fds,
                )
        except OSError as err:
            raise TmaxError(f"could not start bash in {cwd}: {err}") from err
        bash = _Bash(proc=proc, cmdline=None)
        bash.nonces.add(init)
        bash.reader = threading.Thread(
            target=self._read_loop, args=(bash,), name=f"pty-reader-{proc.pid}", daemon=True
        )
        with self._cond:
            closed = self._closed
            if not closed:
                self._bash = bash
        bash.reader.start()
        if closed:  # close() ran meanwhile: it could not see this bash
            self._kill_bash(bash)
            raise ShellClosed("the shell has been closed")
        end = time.monotonic() + self.start_timeout
        with self._cond:
            while not bash.ready:
                left = end - time.monotonic()
                if bash.eof or left <= 0 or self._closed:
                    break
                self._cond.wait(min(left, 0.1))
        if not bash.ready:
            self._kill_bash(bash)
            if self._closed:
                raise ShellClosed("the shell has been closed")
            self._bash = None
            said = bash.early.decode(errors="replace").strip().splitlines()
            if said and said[-1].startswith("tmax-local sandbox:"):
                raise sandbox.SandboxUnavailable(said[-1].removeprefix("tmax-local sandbox: "))
            raise TmaxError(f"bash did not start in {cwd} within {self.start_timeout:.0f} s")
        # The launcher has exec'd bash by now: this is the command line that
        # children forked by bash keep until they execute something else.
        bash.cmdline = procs.cmdline(proc.pid)
        self.cwd = cwd
        self._outside["fds"] = open_fds(bash.pid)
        # Read once, now, before any command has run: later the file is only the shell's
        # to rewrite, and a rewritten baseline would hide every change made since.
        try:
            self._baseline = self._read_state(self._baseline_file(), "baseline")
        except SnapshotError:
            self._baseline = None

    @staticmethod
    def _alive(bash: _Bash) -> bool:
        try:
            return bash.proc.isalive()
        except ptyprocess.PtyProcessError:
            return False

    def _shell_died(self, bash: _Bash) -> int:
        """bash has exited: collect its status, clean up, start a new one."""
        proc = bash.proc
        if proc.exitstatus is not None:
            code = proc.exitstatus
        elif proc.signalstatus is not None:
            code = 128 + proc.signalstatus
        else:
            code = 1
        self._kill_bash(bash)
        self._restart(f"the shell exited (status {code})")
        return code

    def _restart(self, reason: str) -> None:
        if self._closed:
            raise ShellClosed("the shell was closed while a command ran")
        old = self._bash
        if old is not None:
            self._kill_bash(old)
        self._bash = None
        try:
            self.cwd = Path(self._cwd_file()).read_text(encoding="utf-8") or self.cwd
        except OSError:
            pass
        cwd = self.cwd if os.path.isdir(self.cwd) else self._home_cwd
        if not os.path.isdir(cwd):
            cwd = os.path.expanduser("~")
        self._alt_active = False
        if self.sandbox is not None and not os.path.isdir(self.sandbox.tmpdir):
            self.sandbox = self._sandbox_policy()  # the private directory was made anew
            self.env["TMPDIR"] = self.sandbox.tmpdir
        self._spawn(cwd)
        self._state_token = None  # a new bash: take a new snapshot before trusting one
        self._publish(ShellRestarted(reason))

    def _kill_bash(self, bash: _Bash) -> None:
        """Kill bash and everything left in its session, then reap it."""
        if bash.killed:
            return
        bash.killed = True
        sid = bash.pid
        _signal(bash.pid, signal.SIGHUP)
        procs.kill_session(sid, signal.SIGKILL)
        _signal(bash.pid, signal.SIGKILL)
        try:
            bash.proc.wait()
        except ptyprocess.PtyProcessError:
            pass
        # A process that ignored everything above is found again here.
        procs.kill_session(sid, signal.SIGKILL)
        if bash.reader is not None and bash.reader is not threading.current_thread():
            bash.reader.join(timeout=5)
        try:
            bash.proc.close(force=True)
        except (OSError, ptyprocess.PtyProcessError):
            pass

    # -- reader thread -----------------------------------------------------------
    def _read_loop(self, bash: _Bash) -> None:
        fd = bash.fd
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self._last_output = time.monotonic()
            if not bash.ready and len(bash.early) < 4096:
                bash.early += chunk
            bash.pending = self._consume(bash, bash.pending + chunk)
        if bash.pending:
            self._emit(bash, bash.pending)
            bash.pending = b""
        with self._cond:
            bash.eof = True
            self._cond.notify_all()

    def _consume(self, bash: _Bash, buf: bytes) -> bytes:
        """Split ``buf`` into output and our markers; return bytes held back."""
        pos = 0
        for match in _MARK.finditer(buf):
            nonce = match.group(1).decode()
            if nonce not in bash.nonces:
                continue  # looks like a marker, but not one of ours: it is output
            self._emit(bash, buf[pos : match.start()])
            pos = match.end()
            status = match.group(2)
            with self._cond:
                running = self._current
                if running is not None and (running.nonce != nonce or running.finished):
                    running = None  # an earlier command's marker (e.g. from PROMPT_COMMAND)
                if status == b"S":
                    if running is not None:
                        running.begun = True
                        if running.interrupt_pending:
                            self._cond.notify_all()
                    continue
                bash.ready = True
                if running is not None:
                    # Only this marker knows the flags the command left on.
                    bash.flags = match.group(3).decode()
                    running.exit_code = int(status)
                    running.finished = True
                self._cond.notify_all()
        rest = buf[pos:]
        hold = _marker_prefix_start(rest)
        self._emit(bash, rest[:hold])
        return rest[hold:]

    def _emit(self, bash: _Bash, data: bytes) -> None:
        if not data:
            return
        scan = bash.alt_tail + data
        for match in _ALT_SCREEN.finditer(scan):
            if match.end() <= len(bash.alt_tail):
                continue
            active = match.group(1) == b"h"
            if active != self._alt_active:
                self._alt_active = active
                self._publish(AltScreenChanged(active))
            if active:
                with self._cond:
                    if self._current is not None:
                        self._current.alt_used = True
        bash.alt_tail = scan[-7:]
        self._publish(Output(data))
        with self._cond:
            running = self._current
            if running is not None and running.begun and not running.finished:
                running.collector.feed(data)
                running.wait_reported = False


def _marker_prefix_start(buf: bytes) -> int:
    """Index where an unfinished marker may start at the end of ``buf`` (else len)."""
    start = buf.rfind(b"\x1b", max(0, len(buf) - 64))
    if start < 0:
        return len(buf)
    tail = buf[start:]
    if len(tail) <= len(_MARK_INTRO):
        return start if _MARK_INTRO.startswith(tail) else len(buf)
    if tail.startswith(_MARK_INTRO) and _MARK_TAIL.fullmatch(tail, len(_MARK_INTRO)):
        return start
    return len(buf)


def _command_line(nonce: str, path: str, done: str = "\\__tmax_done $?") -> bytes:
    """The line typed for each command.  The completion marker comes from the
    line itself and, when the line is cut short (Ctrl-C, timeout), from
    PROMPT_COMMAND.  Backslashes keep aliases the model defines out of it."""
    # Ctrl-U first: the terminal's line-kill discards anything half-typed by the user.
    return (
        f"\x15 \\__tmax_pre {nonce}; \\builtin . {_quote(path)}; {{ {done}; }} 2>/dev/null\n"
    ).encode()


def _quote(text: str) -> str:
    """Single-quote ``text`` for bash."""
    return "'" + text.replace("'", "'\\''") + "'"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _signal_group(pgrp: int, sig: int) -> None:
    try:
        os.killpg(pgrp, sig)
    except OSError:
        pass
