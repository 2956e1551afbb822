"""The user's config file: defaults for the session flags, read when a parser is built.

``<config dir>/config.toml`` (``tmax_local.paths.config_dir()``; ``$TMAX_CONFIG_DIR``)
holds flat keys named like the flags, with underscores or dashes::

    sandbox = "workspace"      # --sandbox
    allow_network = false      # --allow-network
    approve = "auto"           # --approve

A value there replaces the built-in default; a flag on the command line still wins.
Unknown keys and unreadable files are one-line errors.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tmax_local import paths
from tmax_local.errors import ConfigError

CONFIG_FILE = "config.toml"


def config_path() -> Path:
    return paths.config_dir() / CONFIG_FILE


def load_defaults(known: Iterable[str], path: Path | None = None) -> dict[str, Any]:
    """Defaults from the config file for the option names in ``known`` ({} if no file)."""
    path = path if path is not None else config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    names = set(known)
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in names:
            raise ConfigError(
                f"{path}: unknown setting {key!r} (known: {', '.join(sorted(names))})"
            )
        out[name] = value
    return out
