"""Shared fixtures. Keep this small; put feature-specific fixtures next to their tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import isolated_env


def _ordinary_path() -> None:
    """Run the suite with the user's ordinary ``PATH``, not an activated virtual environment's.

    `scripts/test.sh` activates ``.venv``, which puts ``.venv/bin`` first on ``PATH``; CI may
    clone the project under ``/tmp``. The approval gate rightly distrusts a ``PATH`` entry under
    a world-writable tree (the model could plant ``ls`` there), so every rule-covered command
    in the shells the tests start would be asked and the controls would fail. The tests call
    their tools by absolute path (``sys.executable``, its ``tmax-local`` sibling), so they do
    not need that entry.
    """
    venv_bin = os.path.dirname(sys.executable)
    if os.environ.get("VIRTUAL_ENV") or sys.prefix != sys.base_prefix:
        entries = os.environ.get("PATH", "").split(os.pathsep)
        os.environ["PATH"] = os.pathsep.join(e for e in entries if e != venv_bin)
        os.environ.pop("VIRTUAL_ENV", None)


_ordinary_path()


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


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `tmax-local` subprocess with its own directories under
    ``tmp_path`` (`cli_support.isolated_env`). Modules that need more override it."""
    return isolated_env(tmp_path)


@pytest.fixture
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Transcripts, recordings and saved rules go under tmp_path, never the user's dirs
    (for an app run in this process; use it with ``pytest.mark.usefixtures``)."""
    monkeypatch.setenv("TMAX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TMAX_CONFIG_DIR", str(tmp_path / "config"))
