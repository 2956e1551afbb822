"""`tmax-local` with no subcommand: open the app.

Only argparse here at import time; Textual is imported inside `run`, so `tmax-local --help`
stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("app")
    group.add_argument(
        "--model",
        "-m",
        default=None,
        help="GGUF file, checkpoint dir, HF repo id (checkpoint or GGUF repo) or script:PATH "
        "(a scripted model for demos and tests: a JSON list of raw model outputs); "
        "default allenai/tmax-2b at Q4_K_M",
    )
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
    group.add_argument(
        "--n-gpu-layers",
        "--gpu-layers",
        type=int,
        default=None,
        help="layers to offload to the GPU (default: all when a GPU build)",
    )
    group.add_argument("--theme", default=None, help="Textual theme, e.g. textual-light")
    group.add_argument("--task", default=None, help="start on this task at once")
    group.add_argument(
        "--grammar",
        type=Path,
        default=None,
        help="GBNF grammar file constraining every model reply (testing)",
    )


def options_from_args(args: argparse.Namespace):  # -> TuiOptions (imports Textual)
    from tmax_local.tui.app import TuiOptions

    return TuiOptions(
        model=args.model,
        mode=args.mode,
        cwd=args.cwd,
        resume=args.resume,
        session=args.session,
        n_gpu_layers=args.n_gpu_layers,
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
