"""Rules on disk: the user's ``rules.toml`` (read and written) and a project's
``.tmax-local.toml`` (read only).

User file (``tmax_local.paths.config_dir() / "rules.toml"``)::

    allow = ["git status *", "ls *", "pytest *"]
    deny = ["git push *"]

Project file (``.tmax-local.toml`` in the working directory), an ``[approval]`` table::

    [approval]
    allow = ["make test", "pytest *"]
    deny = ["rm *"]

A project's allow rules must start with a literal command name (no ``*`` in the first
word), so that a cloned repository cannot allow everything.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from tmax_local import paths
from tmax_local.approval.rules import Rule, RuleKind, RuleSet
from tmax_local.errors import ConfigError

RULES_FILE = "rules.toml"
PROJECT_FILE = ".tmax-local.toml"
_HEADER = (
    "# tmax-local approval rules. Each rule is matched against one simple command;\n"
    "# a trailing lone * allows any further arguments. Deny wins over allow.\n"
)


def rules_path() -> Path:
    """The user's saved rules file."""
    return paths.config_dir() / RULES_FILE


def _read(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _rules_from(table: dict[str, Any], path: Path, prefix: str, source: str) -> RuleSet:
    unknown = sorted(set(table) - {"allow", "deny"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown key '{prefix}{unknown[0]}' (expected 'allow' and 'deny')"
        )
    out: dict[str, list[Rule]] = {"allow": [], "deny": []}
    for kind in ("allow", "deny"):
        items = table.get(kind, [])
        if not isinstance(items, list):
            raise ConfigError(f"{path}: {prefix}{kind} must be a list of strings")
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ConfigError(f"{path}: {prefix}{kind}[{i}] must be a string")
            try:
                out[kind].append(Rule.parse(item, source))
            except ConfigError as exc:
                raise ConfigError(f"{path}: {prefix}{kind}[{i}]: {exc}") from None
    return RuleSet(tuple(out["allow"]), tuple(out["deny"]))


def load_saved_rules(path: Path | None = None) -> RuleSet:
    """The user's rules (empty when the file does not exist). Raises `ConfigError`."""
    path = path if path is not None else rules_path()
    data = _read(path)
    return RuleSet() if data is None else _rules_from(data, path, "", "saved")


def load_project_rules(cwd: Path | str) -> RuleSet:
    """The ``[approval]`` rules of ``cwd/.tmax-local.toml`` (empty when absent)."""
    path = Path(cwd) / PROJECT_FILE
    data = _read(path)
    if data is None or "approval" not in data:
        return RuleSet()
    table = data["approval"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'approval' must be a table ([approval])")
    rules = _rules_from(table, path, "approval.", "project")
    for i, rule in enumerate(rules.allow):
        if "*" in rule.words[0]:
            raise ConfigError(
                f"{path}: approval.allow[{i}]: a project rule must start with a literal "
                f"command name, not {rule.words[0]!r}"
            )
    return rules


def save_rule(pattern: str, kind: RuleKind = "allow", path: Path | None = None) -> Path:
    """Add a rule to the user's file (atomically; keeps the rules already there)."""
    path = path if path is not None else rules_path()
    Rule.parse(pattern)  # validate before touching the file
    data = _read(path) or {}
    _rules_from(data, path, "", "saved")  # refuse to rewrite a file we cannot read back
    lists = {k: list(data.get(k, [])) for k in ("allow", "deny")}
    if pattern.strip() not in lists[kind]:
        lists[kind].append(pattern.strip())
    _write_atomic(path, _HEADER + tomli_w.dumps(lists))
    return path


def _write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rules-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
