"""Every user setting of a session, declared once: its field, default, flag and help together.

- `ModelOptions`: which model to run and how (resolving ``--model``, loading it in the
  engine, the harness limits). It builds what the core takes: `resolve()`,
  `engine_options()` (an `engine.EngineOptions`) and `harness_config()` (a
  `harness.HarnessConfig`).
- `SessionOptions`: one session: a `ModelOptions` plus the settings of the shell and the
  approval gate (working directory, approval mode).

`tmax-local run` and the app (`tmax-local`) both call `add_session_arguments(parser)` and
read the result back with `SessionOptions.from_args(args)`: the same flags, the same
defaults, the same names (flag ``--gpu-layers`` → field ``gpu_layers`` → status label).
The app keeps its own, app-only settings (theme, resume...) in ``tui.app.TuiOptions``, which
holds a `SessionOptions`; `run` keeps its task arguments to itself.

How to add an option
--------------------
Add one field, declared with `option()`, to `ModelOptions` (it changes the model, the
engine or the harness) or to `SessionOptions` (shell, sandbox, approval, undo...)::

    allow_network: bool = option(False, "allow commands to reach the network", flag=True)

The flag is the field name with dashes (``--allow-network``); ``type`` is given for
non-string values, ``choices`` for a closed set, ``flag=True`` makes a ``store_true``
switch, ``negatable=True`` a ``--x/--no-x`` pair; ``aliases`` are extra spellings kept for
old command lines. ``%(default)s`` in the help shows the default. Then read the field
where it is used (`SessionOptions` reaches the session of both front ends; a model setting
goes through `engine_options()` / `harness_config()`). Nothing else needs to change: both
commands get the flag and `tests/test_options.py` checks that each field has its flag.

The user's config file (`tmax_local.config`) may replace any of these defaults, by the
field's name; flags on the command line still win.

Defaults are never written here: the harness numbers come from `harness`, the default
model and quant from `resolve`, the approval modes from `approval.policy.MODES`.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from tmax_local.agent import harness
from tmax_local.agent.resolve import DEFAULT_MODEL, DEFAULT_QUANT, ResolvedModel

if TYPE_CHECKING:
    from collections.abc import Callable, Container, Iterator

    from tmax_local.agent.engine import EngineOptions
    from tmax_local.approval.policy import Mode

__all__ = [
    "ModelOptions",
    "SessionOptions",
    "add_model_arguments",
    "add_session_arguments",
    "option",
]

_ARG = "argparse"  # the key of a field's argparse spec in its metadata


class _ApprovalModes:
    """`approval.policy.MODES` as argparse choices, read when first needed: the approval
    package loads tree-sitter, which `tmax-local --help` and `convert` do not need."""

    def _modes(self) -> tuple[str, ...]:
        from tmax_local.approval.policy import MODES

        return MODES

    def __contains__(self, value: object) -> bool:
        return value in self._modes()

    def __iter__(self) -> Iterator[str]:
        return iter(self._modes())


class _SandboxModes(_ApprovalModes):
    """`shell.sandbox.MODES` as argparse choices, read when first needed (it loads the shell)."""

    def _modes(self) -> tuple[str, ...]:
        from tmax_local.shell.sandbox import MODES

        return MODES


def option(
    default: Any,
    help: str,
    *,
    type: Callable[[str], Any] | None = None,
    choices: Container[str] | None = None,
    flag: bool = False,
    negatable: bool = False,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag (see the module docstring)."""
    spec: dict[str, Any] = {"help": help}
    if flag:
        spec["action"] = "store_true"
    elif negatable:
        spec["action"] = argparse.BooleanOptionalAction
    else:
        if type is not None:
            spec["type"] = type
        if choices is not None:
            spec["choices"] = choices
        if metavar is not None:
            spec["metavar"] = metavar
    return field(default=default, metadata={_ARG: (aliases, spec)})


def _add_fields(cls: type, parser: Any) -> None:
    for f in dataclasses.fields(cls):
        if _ARG not in f.metadata:
            continue
        aliases, spec = f.metadata[_ARG]
        flags = ["--" + f.name.replace("_", "-"), *aliases]
        parser.add_argument(*flags, dest=f.name, default=f.default, **spec)


def _from_args(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if _ARG in f.metadata}


@dataclass(frozen=True)
class ModelOptions:
    """Which model to run and how: model, engine and harness settings."""

    model: str | None = option(
        None,
        "GGUF file, checkpoint dir, HF repo id (checkpoint or GGUF repo), "
        "http(s)://HOST:PORT[/v1] (a model server: vLLM, llama-server…; the shell and the "
        "approvals stay here) or script:PATH "
        "(a scripted model for demos and tests: a JSON list of raw model outputs); "
        f"default {DEFAULT_MODEL}",
        aliases=("-m",),
    )
    served_model: str | None = option(
        None, "with --model URL: which model of the server (needed when it serves several)"
    )
    api_key_env: str | None = option(
        None,
        "with --model URL: the environment variable that holds the server's API key "
        "(the key itself is never taken from the command line, nor logged)",
        metavar="VAR",
    )
    quant: str = option(DEFAULT_QUANT, "quantization to convert/download (default: %(default)s)")
    revision: str | None = option(None, "HF branch/tag/commit of --model")
    gpu_layers: int | None = option(
        None,
        "layers to offload to the GPU (-1 all; default: all when a GPU build)",
        type=int,
        aliases=("--n-gpu-layers",),
    )
    threads: int | None = option(None, "CPU threads (default: physical cores)", type=int)
    ctx: int = option(
        harness.CONTEXT_TOKENS, "context size in tokens (default: %(default)s)", type=int
    )
    flash_attn: bool | None = option(
        None, "flash attention (default: on; --no-flash-attn to disable)", negatable=True
    )
    cache_type_k: str | None = option(None, "KV cache type for K (f16, q8_0, f32…)")
    cache_type_v: str | None = option(None, "KV cache type for V")
    timeout: float = option(
        harness.COMMAND_TIMEOUT_S, "seconds per command (default: %(default)s)", type=float
    )
    max_steps: int = option(harness.MAX_STEPS, "model turns (default: %(default)s)", type=int)
    max_new_tokens: int = option(
        harness.MAX_NEW_TOKENS, "tokens per turn (default: %(default)s)", type=int
    )
    temperature: float = option(
        harness.TEMPERATURE, "sampling temperature (default: %(default)s)", type=float
    )
    top_p: float = option(
        harness.TOP_P, "nucleus sampling top-p (default: %(default)s)", type=float
    )
    seed: int | None = option(None, "sampling seed (default: random)", type=int)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        """The options from flags parsed by a parser that `add_model_arguments` set up."""
        return cls(**_from_args(cls, args))

    def engine_options(self, *, grammar: str | None = None) -> EngineOptions:
        from tmax_local.agent.engine import EngineOptions

        return EngineOptions(
            ctx=self.ctx,
            gpu_layers=self.gpu_layers,
            threads=self.threads,
            flash_attn=self.flash_attn,
            cache_type_k=self.cache_type_k,
            cache_type_v=self.cache_type_v,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            grammar=grammar,
        )

    def harness_config(self) -> harness.HarnessConfig:
        return harness.HarnessConfig(
            max_steps=self.max_steps, timeout=self.timeout, max_new_tokens=self.max_new_tokens
        )

    def resolve(self, *, progress: bool = True) -> ResolvedModel:
        """`resolve_model` for these options (may download/convert; see that function).
        A model server URL resolves to a ``remote`` model carrying its connection options."""
        from tmax_local.agent.remote import RemoteOptions, is_remote_model
        from tmax_local.agent.resolve import resolve_model

        if is_remote_model(self.model):
            remote = RemoteOptions.from_model_options(self)
            return ResolvedModel("remote", Path(), str(self.model), remote=remote)
        return resolve_model(self.model, self.quant, revision=self.revision, progress=progress)


@dataclass(frozen=True)
class SessionOptions:
    """One session of the agent: the model options plus the shell and approval settings."""

    model: ModelOptions = field(default_factory=ModelOptions)
    approve: Mode = option(
        "ask",
        "approval mode: ask before commands, auto (ask only for risky ones), "
        "never-run (dry run) (default: %(default)s)",
        choices=_ApprovalModes(),
        aliases=("--mode",),
    )
    cwd: Path | None = option(
        None, "working directory of the shell (default: here)", type=Path, metavar="DIR"
    )
    trust_project: bool = option(
        False,
        "trust this project's .tmax-local.toml approval rules (recorded for the file's exact "
        "contents; asked again when it changes). Without it you are asked at a terminal; "
        "elsewhere they are ignored",
        flag=True,
    )
    checkpoints: bool = option(
        True,
        "record the project before each command so `tmax-local restore` can undo it "
        "(default: on; --no-checkpoints turns it off)",
        negatable=True,
    )
    sandbox: str | None = option(
        None,
        "confine the shell by the OS: workspace (writes only in the project and a private "
        "$TMPDIR, no network, credentials unreadable), read-only, or off (default: workspace "
        "when commands run without asking each, i.e. --approve auto or allow rules; else off)",
        choices=_SandboxModes(),
    )
    allow_network: bool = option(
        False, "let sandboxed commands use the network (TCP, unix sockets)", flag=True
    )
    sandbox_writable: str | None = option(
        None,
        "more directories the sandbox may write, separated by ':' (e.g. tool caches: "
        "~/.cache/pip:~/.npm)",
        metavar="DIRS",
    )

    def sandbox_mode(self, *, allow_rules: bool) -> str:
        """The sandbox the shell runs with: ``--sandbox``, else the default for the approval
        mode (see `shell.sandbox.choose_mode`; raises if a sandbox is needed but missing)."""
        from tmax_local.shell.sandbox import choose_mode

        unattended = self.approve == "auto" or allow_rules
        return choose_mode(self.sandbox, unattended=unattended).value

    def shell_sandbox(self, *, allow_rules: bool) -> dict[str, Any]:
        """`PtyShell` keyword arguments for the sandbox (see `sandbox_mode`)."""
        import os

        writable = tuple(
            os.path.expanduser(p) for p in (self.sandbox_writable or "").split(os.pathsep) if p
        )
        return {
            "sandbox_mode": self.sandbox_mode(allow_rules=allow_rules),
            "allow_network": self.allow_network,
            "sandbox_writable": writable,
        }

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        """The options from flags parsed by a parser that `add_session_arguments` set up."""
        return cls(model=ModelOptions.from_args(args), **_from_args(cls, args))


def add_model_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Add the `ModelOptions` flags to a parser or an argument group."""
    _add_fields(ModelOptions, parser)


def add_session_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every `SessionOptions` flag (model and runtime, then session) to ``parser``."""
    add_model_arguments(parser.add_argument_group("model and runtime"))
    _add_fields(SessionOptions, parser.add_argument_group("session"))
    # The config file's values replace the built-in defaults (flags still win).
    from tmax_local.config import load_defaults

    flags = [
        f.name
        for cls in (ModelOptions, SessionOptions)
        for f in dataclasses.fields(cls)
        if _ARG in f.metadata
    ]
    parser.set_defaults(**load_defaults(flags))
