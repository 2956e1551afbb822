"""The agent's shell: one persistent interactive bash in a PTY that never hangs.

Pure core: no Textual, no model.  Usage::

    from tmax_local.shell import PtyShell, Output, InputWaitSuspected

    with PtyShell("/path/to/project", timeout=120) as shell:
        unsubscribe = shell.subscribe(print)      # events, from shell threads
        result = shell.run("cd src && ls | head") # blocking; fine in a worker thread
        result.output, result.exit_code           # text for the model, status
        shell.run("pwd").output                   # "…/src\\n": cd and export persist

While ``run()`` blocks in one thread, another may call ``send_input(b"yes\\n")``
(the user answering a prompt after ``InputWaitSuspected``), ``interrupt()``
(SIGINT to the foreground job) or ``resize(rows, cols)``.

Behaviour worth knowing:

- bash starts with our own rc file instead of the user's (no ~/.bashrc, no
  profile, no line editor), so it behaves the same everywhere.
- The environment gets non-interactive defaults (PAGER=cat, GIT_PAGER=cat,
  GIT_EDITOR=:, GIT_TERMINAL_PROMPT=0, DEBIAN_FRONTEND=noninteractive,
  TERM=xterm-256color); variables whose names look like secrets (KEY, TOKEN,
  SECRET, PASSWORD, CREDENTIAL, AUTH...) are withheld unless
  ``allow_secrets=True`` (their names are in ``shell.withheld_env``).
- On timeout the foreground process group gets SIGINT, then SIGTERM, then
  SIGKILL (``kill_grace`` seconds apart); the result has ``exit_code=124`` and
  ``timed_out=True``; the shell stays usable.  If bash dies (``exit``,
  ``exec``, ``kill -9 $$``) it is restarted in the same directory and the
  result has ``restarted=True``.
- ``result.output`` is stdout and stderr merged as a terminal shows them,
  cleaned (escape sequences removed, ``\\r`` overwrites resolved) and capped
  while streaming: the first ``head_chars`` and last ``tail_chars`` characters
  are kept (64 Ki each by default), ``result.dropped_chars`` counts the rest.
- The raw byte stream (``Output`` events) feeds a terminal view and
  :class:`AsciicastRecorder`.
- A command still running when the shell is closed makes ``run()`` raise
  :class:`ShellClosed`.
"""

from tmax_local.shell.cast import AsciicastRecorder
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
from tmax_local.shell.pty_shell import TIMEOUT_EXIT_CODE, PtyShell, ShellClosed
from tmax_local.shell.text import TextCollector, clean_text

__all__ = [
    "TIMEOUT_EXIT_CODE",
    "AltScreenChanged",
    "AsciicastRecorder",
    "CommandFinished",
    "CommandResult",
    "CommandStarted",
    "InputWaitSuspected",
    "Output",
    "PtyShell",
    "ShellClosed",
    "ShellEvent",
    "ShellRestarted",
    "TextCollector",
    "clean_text",
    "shell_environment",
]
