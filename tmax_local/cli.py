"""`tmax-local` command line: a thin dispatcher over the subcommand modules.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; they are imported lazily so `--help` stays fast and the
core never pulls in Textual unless the TUI is launched.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tmax_local import __version__
from tmax_local.errors import TmaxError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("tmax_local.convert.cli", "Convert a TMax / Qwen 3.5 checkpoint to GGUF."),
    "run": ("tmax_local.agent.cli_run", "Run the agent on a task in a plain terminal."),
    "imatrix": ("tmax_local.convert.imatrix_cli", "Compute an importance matrix for quantizing."),
    "check": ("tmax_local.convert.check_cli", "Measure a quantization's quality vs a reference."),
    "checkpoints": ("tmax_local.undo.cli_checkpoints", "List a session's checkpoints (undo)."),
    "restore": ("tmax_local.undo.cli_restore", "Put the project back to before a step (undo)."),
    "doctor": ("tmax_local.doctor", "Check this machine: llama.cpp build, RAM, models, health."),
}

# Module providing the default action (the TUI) when no subcommand is given.
DEFAULT_MODULE: str | None = "tmax_local.tui.launch"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tmax-local",
        description=(
            "Run AllenAI's TMax terminal-agent models locally, offline. "
            "With no subcommand, opens the interactive app."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tmax-local {__version__}")
    if DEFAULT_MODULE is not None:
        importlib.import_module(DEFAULT_MODULE).add_arguments(parser)
        parser.set_defaults(_module=DEFAULT_MODULE)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # reads the config file's defaults
    except TmaxError as err:
        print(f"tmax-local: {err}", file=sys.stderr)
        return err.exit_code
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(module).run(args) or 0)
    except TmaxError as err:
        print(f"tmax-local: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("tmax-local: interrupted", file=sys.stderr)
        return 130
