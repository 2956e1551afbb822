"""Where tmax-local keeps things. Functions only: nothing is created at import time."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "tmax-local"


def project_root() -> Path:
    """The checkout this package runs from (where `models/` sits next to `tmax_local/`)."""
    return Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """Default home of converted models: $TMAX_MODELS_DIR, else `models/` of the checkout
    when running from one, else the user data dir."""
    env = os.environ.get("TMAX_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    root = project_root()
    if (root / "pyproject.toml").exists() and (root / "models").is_dir():
        return root / "models"
    return Path(platformdirs.user_data_dir(APP)) / "models"


def config_dir() -> Path:
    env = os.environ.get("TMAX_CONFIG_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    env = os.environ.get("TMAX_DATA_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP))


def sessions_dir() -> Path:
    return data_dir() / "sessions"
