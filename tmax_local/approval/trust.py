"""Which rules a session starts with, and where each came from.

`session_rules` combines the user's saved rules with a project's ``.tmax-local.toml``
rules, which apply only once the user trusts the file's exact contents: already trusted
(recorded by hash), trusted now through ``ask`` (a prompt or dialog that shows the rules),
or trusted for this run by ``--trust-project``. Without any of those the project's allow
rules are ignored and a notice says so. No UI here: the caller passes ``ask``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tmax_local.approval.rules import RuleSet
from tmax_local.approval.store import (
    ProjectRules,
    load_saved_rules,
    read_project_rules,
    trust_project,
)

__all__ = ["AskTrust", "SessionRules", "describe_project", "describe_rules", "session_rules"]

AskTrust = Callable[[ProjectRules], bool]
"""Shows a project's rules and returns True when the user trusts them."""


@dataclass(frozen=True)
class SessionRules:
    rules: RuleSet
    """The rules in force (saved + project, when trusted)."""
    project: ProjectRules | None
    notices: tuple[str, ...]
    """Lines to show the user (what was applied or ignored, and why)."""


def describe_project(project: ProjectRules) -> list[str]:
    """The rules of a project file, as lines for a prompt or dialog."""
    lines = [f"{project.path} asks for these approval rules:"]
    lines += [f"  allow: {r.pattern}" for r in project.rules.allow]
    lines += [f"  deny:  {r.pattern}" for r in project.rules.deny]
    lines += [f"  refused (never applied): {pattern} ({why})" for pattern, why in project.refused]
    return lines


def describe_rules(rules: RuleSet) -> list[str]:
    """Every rule in force with its source (``saved``, ``project``, ``session``)."""
    out = [f"  allow {r.pattern!r} ({r.source})" for r in rules.allow]
    out += [f"  deny  {r.pattern!r} ({r.source})" for r in rules.deny]
    return out or ["  (none)"]


def session_rules(
    cwd: Path | str,
    *,
    trust_flag: bool = False,
    ask: AskTrust | None = None,
    rules_file: Path | None = None,
    trust_file: Path | None = None,
) -> SessionRules:
    """The rules a session in ``cwd`` starts with (raises `ConfigError` for a bad file).

    ``trust_flag`` (``--trust-project``) trusts the project file for this run and records
    it; otherwise an untrusted file is shown to ``ask`` (when given) and recorded only if
    the user agrees. ``ask=None`` means nobody can be asked: the allow rules are ignored.
    """
    saved = load_saved_rules(rules_file)
    project = read_project_rules(cwd, trust_file=trust_file)
    notices: list[str] = []
    if project is None:
        return SessionRules(saved, None, ())
    for pattern, why in project.refused:
        notices.append(f"project rule {pattern!r} is never applied: {why}")
    if not project.trusted and project.rules.allow:
        if trust_flag or (ask is not None and ask(project)):
            project = trust_project(project, trust_file=trust_file)
            notices.append(f"trusted {project.path} (its rules apply from now on)")
        else:
            how = (
                "you did not trust it"
                if ask is not None
                else "not trusted; run interactively or pass --trust-project"
            )
            notices.append(f"{project.path}: its allow rules are ignored ({how})")
    return SessionRules(saved + project.in_force, project, tuple(notices))
