"""The CLI entry of the TUI: light to import, options mapped from flags, one factory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tmax_local.cli import build_parser
from tmax_local.errors import ConfigError
from tmax_local.tui.launch import options_from_args


def test_help_and_launch_module_do_not_import_textual() -> None:
    code = (
        "import sys\n"
        "from tmax_local.cli import build_parser\n"
        "build_parser().format_help()\n"
        "import tmax_local.tui.launch\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_flags_become_app_options(tmp_path: Path) -> None:
    grammar = tmp_path / "g.gbnf"
    grammar.write_text('root ::= "x"\n')
    args = build_parser().parse_args(
        [
            "--model",
            "script:/x.json",
            "--mode",
            "auto",
            "--cwd",
            str(tmp_path),
            "--resume",
            "--grammar",
            str(grammar),
            "--task",
            "hello",
        ]
    )
    opts = options_from_args(args)
    assert (opts.model, opts.mode, opts.cwd, opts.resume, opts.task) == (
        "script:/x.json",
        "auto",
        tmp_path,
        True,
        "hello",
    )
    assert opts.grammar == 'root ::= "x"\n'


def test_unreadable_grammar_is_a_one_line_error(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--grammar", str(tmp_path / "missing.gbnf")])
    with pytest.raises(ConfigError, match="cannot read grammar"):
        options_from_args(args)


def test_app_accepts_the_same_approval_and_gpu_flags_as_run() -> None:
    """`tmax-local --approve auto --gpu-layers 0` means what it means for `tmax-local run`."""
    args = build_parser().parse_args(["--approve", "never-run", "--gpu-layers", "0"])
    opts = options_from_args(args)
    assert (opts.mode, opts.n_gpu_layers) == ("never-run", 0)
    run_args = build_parser().parse_args(["run", "task", "--approve", "never-run", "--gpu-layers", "0"])
    assert (run_args.approve, run_args.gpu_layers) == ("never-run", 0)
