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
    session = opts.session
    assert (session.model.model, session.approve, session.cwd, opts.resume, opts.task) == (
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
    opts = options_from_args(args).session
    assert (opts.approve, opts.model.gpu_layers) == ("never-run", 0)
    run_args = build_parser().parse_args(
        ["run", "task", "--approve", "never-run", "--gpu-layers", "0"]
    )
    assert (run_args.approve, run_args.gpu_layers) == ("never-run", 0)
    # The older spelling of the app still works, for both commands.
    old = build_parser().parse_args(["run", "task", "--mode", "auto", "--n-gpu-layers", "2"])
    assert (old.approve, old.gpu_layers) == ("auto", 2)


MODEL_FLAGS = [
    "--quant", "q8_0",
    "--revision", "v1",
    "--n-gpu-layers", "3",
    "--threads", "2",
    "--ctx", "4096",
    "--no-flash-attn",
    "--cache-type-k", "q8_0",
    "--cache-type-v", "f16",
    "--timeout", "7.5",
    "--max-steps", "5",
    "--max-new-tokens", "321",
    "--temperature", "0.2",
    "--top-p", "0.5",
    "--seed", "42",
]  # fmt: skip


def test_app_takes_every_model_and_runtime_flag_of_run(tmp_path: Path) -> None:
    from tmax_local.agent.options import SessionOptions

    args = build_parser().parse_args(["--model", "script:/x.json", *MODEL_FLAGS])
    app = options_from_args(args)
    opts = app.session.model
    assert (opts.quant, opts.revision, opts.gpu_layers, opts.threads) == ("q8_0", "v1", 3, 2)
    assert (opts.ctx, opts.flash_attn, opts.cache_type_k, opts.cache_type_v) == (
        4096,
        False,
        "q8_0",
        "f16",
    )
    assert (opts.timeout, opts.max_steps, opts.max_new_tokens) == (7.5, 5, 321)
    assert (opts.temperature, opts.top_p, opts.seed) == (0.2, 0.5, 42)
    # The same flags on `run` give the same options: one shared group.
    run_args = build_parser().parse_args(["run", "t", "--model", "script:/x.json", *MODEL_FLAGS])
    assert SessionOptions.from_args(run_args) == app.session


def test_defaults_match_between_app_and_run() -> None:
    from tmax_local.agent.options import SessionOptions

    app = options_from_args(build_parser().parse_args([]))
    run = SessionOptions.from_args(build_parser().parse_args(["run", "t"]))
    assert app.session == run == SessionOptions()


def test_session_builds_engine_and_harness_config_from_the_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flags reach the loaded model (scripted: its context limit) and the agent's config."""
    import json

    from tmax_local.agent.engine import EngineOptions
    from tmax_local.agent.harness import HarnessConfig
    from tmax_local.agent.parser import bash_reply
    from tmax_local.tui.session import Session

    script = tmp_path / "s.json"
    script.write_text(json.dumps([bash_reply("echo hi")]))
    grammar = tmp_path / "g.gbnf"
    grammar.write_text('root ::= "x"\n')
    args = build_parser().parse_args(
        ["--model", f"script:{script}", "--grammar", str(grammar), "--cwd", str(tmp_path)]
        + MODEL_FLAGS
    )
    monkeypatch.setenv("TMAX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TMAX_CONFIG_DIR", str(tmp_path / "config"))
    opts = options_from_args(args)
    session = Session(opts.session, lambda e: None, approver=_NoAnswers(), grammar=opts.grammar)
    assert session.engine_options() == EngineOptions(
        ctx=4096,
        gpu_layers=3,
        threads=2,
        flash_attn=False,
        cache_type_k="q8_0",
        cache_type_v="f16",
        temperature=0.2,
        top_p=0.5,
        seed=42,
        grammar='root ::= "x"\n',
    )
    expected = HarnessConfig(max_steps=5, timeout=7.5, max_new_tokens=321)
    info = session.load_model(lambda text: None)
    assert info.backend == "scripted" and info.context_limit == 4096
    assert session.model.context_limit == 4096
    session.start_shell(rows=24, cols=80, on_output=lambda b: None, on_event=lambda e: None)
    try:
        agent = session._new_agent()
        assert agent.config == expected
        assert agent.transcript is not None
        agent.transcript.close()
    finally:
        session.close()


class _NoAnswers:
    def __call__(self, request):  # never asked: nothing runs in this test
        raise AssertionError("unexpected approval request")

    def cancel(self) -> None:
        pass
