"""Each setting is declared once (tmax_local.agent.options) and reaches both front ends."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from tmax_local.agent import harness
from tmax_local.agent.options import (
    ModelOptions,
    SessionOptions,
    add_session_arguments,
    option,
)
from tmax_local.cli import build_parser


def _flag_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata]


def _parsers() -> dict[str, argparse.ArgumentParser]:
    root = build_parser()
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return {"app": root, "run": sub.choices["run"]}


@pytest.mark.parametrize("front_end", ["app", "run"])
def test_every_option_field_is_a_flag_of_both_front_ends(front_end: str) -> None:
    parser = _parsers()[front_end]
    by_dest = {a.dest: a for a in parser._actions}
    for cls in (ModelOptions, SessionOptions):
        for f in _flag_fields(cls):
            action = by_dest[f.name]  # flag destination == field name
            assert "--" + f.name.replace("_", "-") in action.option_strings
            assert action.default == f.default, f.name


def test_the_defaults_are_the_harness_numbers_written_once() -> None:
    from tmax_local.agent.engine import EngineOptions
    from tmax_local.agent.resolve import DEFAULT_QUANT
    from tmax_local.convert.quants import DEFAULT_QUANT as CONVERTER_DEFAULT

    m = ModelOptions()
    assert (m.ctx, m.max_new_tokens, m.max_steps, m.timeout) == (65536, 16384, 64, 120.0)
    assert (m.temperature, m.top_p) == (0.7, 0.95)
    assert m.ctx == harness.CONTEXT_TOKENS and m.temperature == harness.TEMPERATURE
    assert m.harness_config() == harness.HarnessConfig()
    assert m.engine_options() == EngineOptions()
    assert m.quant == DEFAULT_QUANT == CONVERTER_DEFAULT


def test_approval_modes_come_from_the_policy() -> None:
    from tmax_local.approval.policy import MODES

    for parser in _parsers().values():
        action = next(a for a in parser._actions if a.dest == "approve")
        assert tuple(action.choices or ()) == MODES


def test_flags_map_to_fields_and_help_shows_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_session_arguments(parser)
    args = parser.parse_args(
        ["--gpu-layers", "9", "--ctx", "4096", "--timeout", "3", "--approve", "auto"]
    )
    opts = SessionOptions.from_args(args)
    assert opts.approve == "auto"
    assert (opts.model.gpu_layers, opts.model.ctx, opts.model.timeout) == (9, 4096, 3.0)
    assert opts.model.harness_config().timeout == 3.0
    assert opts.model.engine_options().ctx == 4096
    text = parser.format_help()
    assert "context size in tokens (default: 65536)" in " ".join(text.split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--approve", "sometimes"])


def test_a_new_field_is_a_new_flag() -> None:
    """What the module docstring promises: one field declared with `option` is one flag."""

    @dataclasses.dataclass(frozen=True)
    class WithSandbox(SessionOptions):
        sandbox: str = option("workspace", "confine commands", choices=("workspace", "off"))
        allow_network: bool = option(False, "let commands reach the network", flag=True)

    from tmax_local.agent.options import _add_fields, _from_args

    parser = argparse.ArgumentParser()
    _add_fields(WithSandbox, parser)
    args = parser.parse_args(["--sandbox", "off", "--allow-network"])
    got = _from_args(WithSandbox, args)
    assert got["sandbox"] == "off" and got["allow_network"] is True
    # the inherited session fields come along with their defaults (whatever else is added)
    assert got["approve"] == "ask" and got["cwd"] is None
    assert set(got) == {f.name for f in dataclasses.fields(WithSandbox)} - {"model"}
