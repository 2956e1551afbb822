"""The agent's shell: one persistent interactive bash in a PTY that never hangs.

Pure core: no Textual, no model.  Usage::

    from tmax_local.shell import PtyShell, AsciicastRecorder, InputWaitSuspected

    with PtyShell("/path/to/project", timeout=120) as shell:
        unsubscribe = shell.subscribe(on_event)    # events, see below
        result = shell.run("cd src && ls | head")  # blocks; fine in a worker thread
        result.output, result.exit_code            # text for the model, status
        shell.run("pwd").output                    # ".../src\n": cd and export persist

``PtyShell(cwd, *, timeout=120.0, rows=40, cols=120, env=None, allow_secrets=False,
head_chars=65536, tail_chars=65536, kill_grace=1.0, input_wait_after=0.5,
sandbox_mode="off", allow_network=False, sandbox_writable=())``

- ``sandbox_mode``: ``workspace`` | ``read-only`` | ``off`` (see ``sandbox.py``): the
  operating system confines bash and everything it starts, restarts included.
  Refused accesses are explained at the end of ``result.output`` (and in
  ``result.sandbox_denials``).  ``run_unsandboxed(command)`` runs one approved
  command in a fresh unconfined bash (same cwd and exported variables);
  ``set_sandbox(mode, allow_network=...)`` changes the setting between commands.

- ``run(command, timeout=None) -> CommandResult``: one command at a time.
  ``CommandResult`` has ``command, exit_code, output, timed_out, restarted,
  waiting_for_input, alt_screen_used, duration_s, dropped_chars`` and the
  property ``output_truncated``.
- From any other thread while ``run()`` blocks: ``send_input(b"yes\n")`` (the
  user typing: answer a prompt, quit ``less``), ``interrupt()`` (SIGINT to the
  foreground job, like Ctrl-C), ``resize(rows, cols)``, ``close()`` (then
  ``run()`` raises :class:`ShellClosed`).
- ``cwd`` (the shell's directory, kept up to date), ``pid``, ``alt_screen``,
  ``withheld_env`` (names of secret-looking variables left out).
- ``live_state() -> LiveState``: a snapshot of what the shell would do with a
  command name now (functions, builtins, aliases, traps, options, sensitive
  variables, open file descriptors) next to the one taken at start; the approval
  gate reads it before anything runs unasked (``state.py``,
  ``tmax_local.approval.live``).  ``protect_parent=True`` also removes the
  withheld secrets from this process (``secrets.py``).
- ``subscribe(callback) -> unsubscribe``.  Events (``events.py``):
  ``CommandStarted(command)``, ``Output(data)`` (every raw byte from the
  terminal, including output between commands; only our invisible markers are
  removed), ``CommandFinished(result)``, ``InputWaitSuspected(command)``,
  ``AltScreenChanged(active)``, ``ShellRestarted(reason)``.  ``Output`` and
  ``AltScreenChanged`` come from the reader thread, the rest from the thread in
  ``run()``; callbacks must be quick (a UI hands them to its own loop).  A
  callback that raises is logged and skipped.
- ``AsciicastRecorder(path, cols, rows)`` is a subscriber that writes an
  asciinema v2 cast of the raw stream.

Behaviour worth knowing:

- bash starts with our own rc file instead of the user's (no ~/.bashrc, no
  profile, no line editor, no history), so it behaves the same everywhere.
- The environment gets non-interactive defaults (PAGER=cat, GIT_PAGER=cat,
  GIT_EDITOR=:, GIT_TERMINAL_PROMPT=0, DEBIAN_FRONTEND=noninteractive,
  TERM=xterm-256color), git settings that keep a repository's config from
  running programs (``GIT_CONFIG_COUNT``…, ``env.GIT_SAFE_CONFIG``); variables
  whose names look like secrets (``*_KEY``, ``*_TOKEN``, ``*_PASS``, ``*PASSWORD``,
  ``MYSQL_PWD``, ``GH_PAT``, ``DATABASE_URL``, URLs with a password...) are
  withheld unless ``allow_secrets=True``.
- On timeout the foreground process group gets SIGINT, then SIGTERM, then
  SIGKILL (``kill_grace`` seconds apart); the result has ``exit_code=124`` and
  ``timed_out=True``; the shell stays usable.  If bash dies (``exit``,
  ``exec``, ``kill -9 $$``, ``set -e``) it is restarted in the same directory
  (environment and functions are lost) and the result has ``restarted=True``.
- ``result.output`` is stdout and stderr merged as a terminal shows them (a
  PTY cannot tell them apart), cleaned (escape sequences removed, ``\r``
  overwrites resolved, invalid UTF-8 replaced, bash's "[1]+ Done" notices
  dropped) and
  capped while streaming: the first ``head_chars`` and last ``tail_chars``
  characters are kept, with a one-line note between them, and
  ``result.dropped_chars`` counts the rest.
- A command blocked reading the terminal with no output for
  ``input_wait_after`` seconds is reported (``InputWaitSuspected``,
  ``waiting_for_input``) but never killed early.  Linux only (``/proc``).
- ``close()`` kills every process left in the shell's session (background
  jobs, ``nohup``); processes that left the session (``setsid``) survive.
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
