"""`tmax-local` with no subcommand: open the app.

Only argparse and the shared options (`tmax_local.agent.options`) at import time; Textual
is imported inside `run`, so `tmax-local --help` stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tmax_local.agent.options import SessionOptions, add_session_arguments
from tmax_local.errors import ConfigError

if TYPE_CHECKING:
    from tmax_local.tui.app import TuiOptions

__all__ = ["add_arguments", "options_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("app")
    group.add_argument("--resume", action="store_true", help="reopen the last session")
    group.add_argument(
        "--session-file",
        "--session",
        dest="session_file",
        type=Path,
        default=None,
        help="reopen this session file",
    )
    group.add_argument("--theme", default=None, help="Textual theme, e.g. textual-light")
    group.add_argument("--task", default=None, help="start on this task at once")
    group.add_argument(
        "--grammar",
        type=Path,
        default=None,
        help="GBNF grammar file constraining every model reply (testing)",
    )
    add_session_arguments(parser)


def options_from_args(args: argparse.Namespace) -> TuiOptions:
    """The app's options from the parsed flags (imports Textual)."""
    from tmax_local.tui.app import TuiOptions

    return TuiOptions(
        session=SessionOptions.from_args(args),
        resume=args.resume,
        session_file=args.session_file,
        theme=args.theme,
        task=args.task,
        grammar=_read_grammar(args.grammar),
    )


def run(args: argparse.Namespace) -> int:
    from tmax_local.shell.env import shell_environment
    from tmax_local.shell.secrets import protect_process
    from tmax_local.tui.app import make_app

    # the agent's shell cannot read withheld secrets back from this process's /proc
    protect_process(shell_environment()[1])
    app = make_app(options_from_args(args))
    result = app.run()
    return int(result or 0)


def _read_grammar(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read grammar {path}: {err.strerror}") from None
