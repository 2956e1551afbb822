"""Events a :class:`~tmax_local.shell.PtyShell` publishes, and the result of one command.

Subscribers receive these objects through ``PtyShell.subscribe(callback)``.
``Output`` and ``AltScreenChanged`` come from the shell's reader thread; the
others come from the thread that called ``run()``.  Callbacks must be quick and
must not call back into ``run()`` (a UI should hand them to its own loop, e.g.
Textual's ``App.call_from_thread``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one ``PtyShell.run()`` produced.

    ``output`` is the text view meant for the model: stdout and stderr as the
    terminal showed them (a PTY cannot separate the two), with escape sequences
    stripped, carriage-return overwrites resolved, invalid UTF-8 replaced and
    the middle dropped when it grew past the shell's cap (see ``dropped_chars``).
    """

    command: str
    exit_code: int
    """The command's exit status; 124 on timeout (as ``timeout(1)`` reports);
    for a shell that died, its exit status (or 128 + signal number)."""
    output: str
    timed_out: bool = False
    restarted: bool = False
    """The shell died (``exit``, ``exec``, ``kill -9 $$``, ``set -e``...) and a
    fresh one was started, in the same directory when it still exists."""
    waiting_for_input: bool = False
    """The command was seen blocked reading the terminal with no output."""
    alt_screen_used: bool = False
    """The command switched the terminal to the alternate screen (less, vim, top)."""
    duration_s: float = 0.0
    dropped_chars: int = 0
    """Characters dropped from the middle of ``output`` by the streaming cap."""
    sandbox_denials: tuple[str, ...] = ()
    """``[sandbox] ...`` notes (also appended to ``output``): accesses the
    sandbox refused, as read from the command's error messages."""

    @property
    def output_truncated(self) -> bool:
        return self.dropped_chars > 0


@dataclass(frozen=True, slots=True)
class CommandStarted:
    command: str


@dataclass(frozen=True, slots=True)
class Output:
    """Raw bytes from the terminal, in order, including output that arrives
    between commands (background jobs).  The shell's own completion markers
    are removed; everything else is passed through untouched."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CommandFinished:
    result: CommandResult


@dataclass(frozen=True, slots=True)
class InputWaitSuspected:
    """The running command looks blocked on a terminal read (``read``, a
    password prompt): a UI may hand the keyboard to the user (``send_input``)."""

    command: str


@dataclass(frozen=True, slots=True)
class AltScreenChanged:
    active: bool


@dataclass(frozen=True, slots=True)
class ShellRestarted:
    reason: str


ShellEvent = (
    CommandStarted
    | Output
    | CommandFinished
    | InputWaitSuspected
    | AltScreenChanged
    | ShellRestarted
)
