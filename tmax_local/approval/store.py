"""Rules on disk: the user's ``rules.toml`` (read and written) and a project's
``.tmax-local.toml`` (read only).

User file (``tmax_local.paths.config_dir() / "rules.toml"``)::

    allow = ["git status *", "ls *", "pytest *"]
    deny = ["git push *"]

Project file (``.tmax-local.toml`` in the working directory), an ``[approval]`` table::

    [approval]
    allow = ["ls *", "git status"]
    deny = ["rm *"]

A cloned repository's rules are not the user's choice, so they need the user's trust:

- `read_project_rules` reads the file once and returns a `ProjectRules` with the rules,
  a SHA-256 of the file's exact bytes, and whether the user trusts those bytes;
- `trust_project` records that hash for the project's path in the config dir
  (``trusted-projects.toml``); any change to the file asks again;
- `load_project_rules` returns the rules in force: the deny rules always (they only ever
  ask more), the allow rules only when trusted (or when the caller passes ``trust=True``);
- allow rules must start with a literal command name (no ``*``, no path: a script in the
  repository is the repository's code), and may never allow shells, interpreters or
  programs that run code from their arguments or the repository's files
  (`programs.CODE_FROM_ARGS`, `programs.PROJECT_CODE`): those are listed in
  `ProjectRules.refused` and never take effect.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from tmax_local import paths
from tmax_local.approval.programs import PROJECT_CODE, runs_code_from_args
from tmax_local.approval.rules import Rule, RuleKind, RuleSet
from tmax_local.errors import ConfigError

RULES_FILE = "rules.toml"
PROJECT_FILE = ".tmax-local.toml"
TRUST_FILE = "trusted-projects.toml"
_HEADER = (
    "# tmax-local approval rules. Each rule is matched against one simple command;\n"
    "# a trailing lone * allows any further arguments. Deny wins over allow.\n"
)


def rules_path() -> Path:
    """The user's saved rules file."""
    return paths.config_dir() / RULES_FILE


def _read(path: Path) -> dict[str, Any] | None:
    raw = _read_bytes(path)
    return None if raw is None else _parse(path, raw)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
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


@dataclass(frozen=True)
class ProjectRules:
    """A project's ``.tmax-local.toml`` rules, as read once."""

    path: Path
    digest: str
    """SHA-256 of the file's exact bytes (what trust is recorded for)."""
    rules: RuleSet
    """The file's rules, less the refused ones."""
    refused: tuple[tuple[str, str], ...]
    """(pattern, why) for allow rules a project may not set."""
    trusted: bool
    """True when the user trusts these exact bytes."""

    @property
    def in_force(self) -> RuleSet:
        """What applies now: deny rules always, allow rules only when trusted."""
        return self.rules if self.trusted else RuleSet((), self.rules.deny)

    def trusting(self) -> ProjectRules:
        return ProjectRules(self.path, self.digest, self.rules, self.refused, True)


def project_refusal(rule: Rule) -> str:
    """Why a project may not set the allow rule ``rule`` ('' when it may)."""
    first = rule.words[0]
    if "/" in first:
        return f"{first!r} is a program in a path: a project cannot allow its own scripts"
    if runs_code_from_args(first) or first in PROJECT_CODE:
        return (
            f"{first} can run code from its arguments or the repository's files; "
            "only you can allow it (in your own rules)"
        )
    if "=" in first:
        return "a project rule cannot set environment variables"
    return ""


def read_project_rules(cwd: Path | str, *, trust_file: Path | None = None) -> ProjectRules | None:
    """The project file of ``cwd`` (None when there is none or it has no ``[approval]``).
    Raises `ConfigError` for a malformed file."""
    path = Path(cwd) / PROJECT_FILE
    raw = _read_bytes(path)
    if raw is None:
        return None
    data = _parse(path, raw)
    if "approval" not in data:
        return None
    table = data["approval"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'approval' must be a table ([approval])")
    rules = _rules_from(table, path, "approval.", "project")
    kept: list[Rule] = []
    refused: list[tuple[str, str]] = []
    for i, rule in enumerate(rules.allow):
        if "*" in rule.words[0]:
            raise ConfigError(
                f"{path}: approval.allow[{i}]: a project rule must start with a literal "
                f"command name, not {rule.words[0]!r}"
            )
        why = project_refusal(rule)
        if why:
            refused.append((rule.pattern, why))
        else:
            kept.append(rule)
    digest = hashlib.sha256(raw).hexdigest()
    trusted = _trusted_digest(path, trust_file) == digest
    return ProjectRules(path, digest, RuleSet(tuple(kept), rules.deny), tuple(refused), trusted)


def load_project_rules(
    cwd: Path | str, *, trust: bool = False, trust_file: Path | None = None
) -> RuleSet:
    """The ``[approval]`` rules of ``cwd/.tmax-local.toml`` in force: empty when absent;
    deny rules always; allow rules only when the user trusts the file's exact contents
    (or ``trust`` is true, e.g. ``--trust-project``). Refused rules never apply."""
    project = read_project_rules(cwd, trust_file=trust_file)
    if project is None:
        return RuleSet()
    return project.rules if trust else project.in_force


def trust_path() -> Path:
    """Where trusted project files are recorded (path → SHA-256 of the trusted contents)."""
    return paths.config_dir() / TRUST_FILE


def _trust_table(trust_file: Path) -> dict[str, Any]:
    data = _read(trust_file) or {}
    table = data.get("projects", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{trust_file}: 'projects' must be a table")
    return table


def _trusted_digest(path: Path, trust_file: Path | None) -> str | None:
    table = _trust_table(trust_file if trust_file is not None else trust_path())
    value = table.get(str(path.resolve()))
    return value if isinstance(value, str) else None


def trust_project(project: ProjectRules, *, trust_file: Path | None = None) -> ProjectRules:
    """Record that the user trusts ``project``'s exact contents (atomically)."""
    trust_file = trust_file if trust_file is not None else trust_path()
    table = dict(_trust_table(trust_file))
    table[str(project.path.resolve())] = project.digest
    header = (
        "# Project rule files (.tmax-local.toml) you trusted, by path and SHA-256 of their\n"
        "# exact contents. A changed file is asked about again.\n"
    )
    _write_atomic(trust_file, header + tomli_w.dumps({"projects": table}))
    return project.trusting()


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
