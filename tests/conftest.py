"""Shared fixtures. Keep this small; put feature-specific fixtures next to their tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory for tiny random Qwen 3.5 checkpoints (tmax_local.testing.checkpoints), cached
    per test session by their keyword arguments. Treat the returned directory as read-only."""
    cache: dict[tuple[tuple[str, Any], ...], Path] = {}

    def make(**kwargs: Any) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            from tmax_local.testing.checkpoints import make_tiny_checkpoint

            cache[key] = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_gguf(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """Factory: tiny checkpoint (kwargs) converted with our converter to ``quant`` (cached)."""
    cache: dict[tuple[Any, ...], Path] = {}

    def make(quant: str = "F32", **kwargs: Any) -> Path:
        key = (quant, tuple(sorted(kwargs.items())))
        if key not in cache:
            from tmax_local.convert import convert_checkpoint

            src = tiny_checkpoint(**kwargs)
            out = tmp_path_factory.mktemp("gguf") / f"tiny-{quant}.gguf"
            cache[key] = convert_checkpoint(src, quant, out, progress=False)
        return cache[key]

    return make
