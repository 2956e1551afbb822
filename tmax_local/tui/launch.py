"""`tmax-local` with no subcommand: open the app.

Only argparse (and the shared model flags, `tmax_local.agent.options`) at import time; Textual is imported inside `run`, so `tmax-local --help`
stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tmax_local.agent.options import ModelOptions, add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("app")
    group.add_argument(
        "--mode",
        "--approve",
        choices=("ask", "auto", "never-run"),
        default="ask",
        help="approval mode (default: ask)",
    )
    group.add_argument("--cwd", type=Path, default=None, help="working directory of the shell")
    group.add_argument("--resume", action="store_true", help="reopen the last session")
    group.add_argument("--session", type=Path, default=None, help="reopen this session file")
    group.add_argument("--theme", default=None, help="Textual theme, e.g. textual-light")
    group.add_argument("--task", default=None, help="start on this task at once")
    group.add_argument(
        "--grammar",
        type=Path,
        default=None,
        help="GBNF grammar file constraining every model reply (testing)",
    )
    add_model_arguments(parser.add_argument_group("model and runtime"))


def options_from_args(args: argparse.Namespace):  # -> TuiOptions (imports Textual)
    from tmax_local.tui.app import TuiOptions

    return TuiOptions.with_model_options(
        ModelOptions.from_args(args),
        mode=args.mode,
        cwd=args.cwd,
        resume=args.resume,
        session=args.session,
        theme=args.theme,
        task=args.task,
        grammar=_read_grammar(args.grammar),
    )


def run(args: argparse.Namespace) -> int:
    from tmax_local.tui.app import make_app

    app = make_app(options_from_args(args))
    result = app.run()
    return int(result or 0)


def _read_grammar(path: Path | None) -> str | None:
    from tmax_local.errors import ConfigError

    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read grammar {path}: {err.strerror}") from None
