"""`tmax-local run`: the rules a session starts with, with the project file's trust asked
at a terminal prompt (or given by ``--trust-project``), and the active rules shown."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from tmax_local.approval.store import ProjectRules
from tmax_local.approval.trust import (
    AskTrust,
    SessionRules,
    describe_project,
    describe_rules,
    session_rules,
)


def terminal_trust(answers: TextIO | None, out: TextIO) -> AskTrust | None:
    """An ``ask`` for `session_rules` that shows the project's rules and reads y/N from
    ``answers`` (None when nobody can answer: the rules are then ignored)."""
    if answers is None:
        return None

    def ask(project: ProjectRules) -> bool:
        out.write("\n".join(describe_project(project)) + "\n")
        out.write("Trust these rules for this project (until the file changes)? [y/N] ")
        out.flush()
        reply = answers.readline()
        return reply.strip().lower() in ("y", "yes")

    return ask


def rules_for_run(
    cwd: Path,
    *,
    trust_flag: bool,
    answers: TextIO | None,
    out: TextIO,
    rules_file: Path | None = None,
) -> SessionRules:
    """Saved + project rules for a run, telling ``out`` what applies and why."""
    found = session_rules(
        cwd, trust_flag=trust_flag, ask=terminal_trust(answers, out), rules_file=rules_file
    )
    for notice in found.notices:
        out.write(f"[rules] {notice}\n")
    if found.rules.allow or found.rules.deny:
        out.write("[rules] active:\n" + "\n".join(describe_rules(found.rules)) + "\n")
    out.flush()
    return found
