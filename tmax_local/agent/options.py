"""Model and runtime options shared by `tmax-local run` and the app (`tmax-local`).

One argument group (`add_model_arguments`) and one carrier (`ModelOptions`) that turns the
parsed flags into what the core already takes: `resolve_model`'s parameters, an
`engine.EngineOptions` and a `harness.HarnessConfig`. Only argparse and dataclasses at import
time: the engine and harness modules are imported when the objects are built.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tmax_local.agent.engine import EngineOptions
    from tmax_local.agent.harness import HarnessConfig

DEFAULT_QUANT = "Q4_K_M"  # same as tmax_local.agent.resolve.DEFAULT_QUANT (not imported: light)


@dataclass(frozen=True)
class ModelOptions:
    """Which model to run and how: the values of the shared flags."""

    model: str | None = None
    quant: str = DEFAULT_QUANT
    revision: str | None = None
    gpu_layers: int | None = None
    threads: int | None = None
    ctx: int = 65536
    flash_attn: bool | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    timeout: float = 120.0
    max_steps: int = 64
    max_new_tokens: int = 16384
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelOptions:
        """The options from flags parsed by a parser that `add_model_arguments` set up."""
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})

    def engine_options(self, *, grammar: str | None = None) -> EngineOptions:
        from tmax_local.agent.engine import EngineOptions

        return EngineOptions(
            n_ctx=self.ctx,
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

    def harness_config(self) -> HarnessConfig:
        from tmax_local.agent.harness import HarnessConfig

        return HarnessConfig(
            max_steps=self.max_steps,
            command_timeout=self.timeout,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
        )

    def resolve(self, *, progress: bool = True) -> Any:
        """`resolve_model` for these options (may download/convert; see that function)."""
        from tmax_local.agent.resolve import resolve_model

        return resolve_model(self.model, self.quant, revision=self.revision, progress=progress)


def add_model_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Add the model/runtime flags to a parser or an argument group.

    Flag spellings: ``--gpu-layers`` also answers to ``--n-gpu-layers`` (the app's older
    name), ``--model`` to ``-m``. Destinations are the `ModelOptions` field names.
    """
    d = ModelOptions()
    add = parser.add_argument
    add(
        "--model",
        "-m",
        default=None,
        help="GGUF file, checkpoint dir, HF repo id (checkpoint or GGUF repo) or script:PATH "
        "(a scripted model for demos and tests: a JSON list of raw model outputs); "
        "default allenai/tmax-2b at Q4_K_M",
    )
    add("--quant", default=d.quant, help=f"quantization to convert/download ({d.quant})")
    add("--revision", default=None, help="HF branch/tag/commit of --model")
    add(
        "--gpu-layers",
        "--n-gpu-layers",
        dest="gpu_layers",
        type=int,
        default=None,
        help="layers to offload to the GPU (-1 all; default: all when a GPU build)",
    )
    add("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    add("--ctx", type=int, default=d.ctx, help=f"context size in tokens ({d.ctx})")
    add(
        "--flash-attn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flash attention (default: on; --no-flash-attn to disable)",
    )
    add("--cache-type-k", default=None, help="KV cache type for K (f16, q8_0, f32…)")
    add("--cache-type-v", default=None, help="KV cache type for V")
    add("--timeout", type=float, default=d.timeout, help=f"seconds per command ({d.timeout:g})")
    add("--max-steps", type=int, default=d.max_steps, help=f"model turns ({d.max_steps})")
    add(
        "--max-new-tokens",
        type=int,
        default=d.max_new_tokens,
        help=f"tokens per turn ({d.max_new_tokens})",
    )
    add(
        "--temperature",
        type=float,
        default=d.temperature,
        help=f"sampling temperature ({d.temperature})",
    )
    add("--top-p", type=float, default=d.top_p, help=f"nucleus sampling top-p ({d.top_p})")
    add("--seed", type=int, default=None, help="sampling seed (default: random)")
