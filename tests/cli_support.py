"""Helpers for tests that run `tmax-local` as a user does: ``python -m tmax_local`` in a
subprocess, with its own data, config and model directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TMAX = [sys.executable, "-m", "tmax_local"]


def isolated_env(tmp_path: Path, *, drop_git: bool = False, **extra: str) -> dict[str, str]:
    """``os.environ`` with tmax-local's directories and ``HF_HOME`` under ``tmp_path`` and
    the Hub offline. ``drop_git`` leaves out the caller's ``GIT_*`` variables; ``extra`` sets
    more (``HOME``, a git identity)."""
    env = {k: v for k, v in os.environ.items() if not (drop_git and k.startswith("GIT_"))}
    env.update(
        TMAX_DATA_DIR=str(tmp_path / "data"),
        TMAX_CONFIG_DIR=str(tmp_path / "cfg"),
        TMAX_MODELS_DIR=str(tmp_path / "models"),
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = "", timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``tmax-local ARGS`` in ``cwd``, ``stdin`` typed in; output captured as text."""
    return subprocess.run(
        [*TMAX, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
