"""TMax / Qwen 3.5 checkpoint → GGUF converter (installed as ``tmax_local.convert``).

Public API::

    from tmax_local.convert import convert_checkpoint, resolve_source, list_quants
    path = convert_checkpoint("hamishivi/tmax-2b", quant="Q4_K_M", overwrite=False)

Importing this package loads nothing heavy (numpy, gguf and llama.cpp are
imported when a conversion runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "DEFAULT_QUANT",
    "QUANT_TYPES",
    "convert_checkpoint",
    "default_output",
    "list_quants",
    "resolve_source",
]

if TYPE_CHECKING:
    from tmax_local.convert.api import convert_checkpoint, default_output, list_quants
    from tmax_local.convert.quants import DEFAULT_QUANT, QUANT_TYPES
    from tmax_local.convert.source import resolve_source


def __getattr__(name: str) -> Any:
    if name in ("convert_checkpoint", "list_quants", "default_output"):
        from tmax_local.convert import api

        return getattr(api, name)
    if name == "resolve_source":
        from tmax_local.convert.source import resolve_source

        return resolve_source
    if name in ("QUANT_TYPES", "DEFAULT_QUANT"):
        from tmax_local.convert import quants

        return getattr(quants, name)
    raise AttributeError(name)
