"""The approval policy: a pure function from (command, mode, rules, cwd) to a decision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from tmax_local.approval.analysis import Analysis, analyze
from tmax_local.approval.labels import NEVER_BY_RULE, Label
from tmax_local.approval.parts import Part
from tmax_local.approval.rules import Rule, RuleSet
from tmax_local.errors import ConfigError

Mode = Literal["ask", "auto", "never-run"]
MODES: tuple[str, ...] = get_args(Mode)
Action = Literal["run", "ask", "skip"]


@dataclass(frozen=True)
class PartDecision:
    """What the policy thinks of one part."""

    part: Part
    labels: tuple[Label, ...]
    allowed_by: Rule | None
    """The allow rule that covers this part (None if none, or if it cannot be covered)."""
    denied_by: Rule | None
    uncovered: tuple[Label, ...] = ()
    """Labels that kept a matching allow rule from covering this part."""


@dataclass(frozen=True)
class Decision:
    """``run`` (no need to ask), ``ask`` (show the user), or ``skip`` (dry run)."""

    action: Action
    mode: Mode
    reasons: tuple[str, ...]
    """Why: for ``ask``, every reason the command could not simply run."""
    analysis: Analysis
    parts: tuple[PartDecision, ...]

    @property
    def command(self) -> str:
        return self.analysis.command

    @property
    def by_rule(self) -> bool:
        """True when it runs because every part is covered by an allow rule."""
        return (
            self.action == "run"
            and bool(self.parts)
            and all(p.allowed_by is not None for p in self.parts)
        )


SHELL_TEST = Rule("(the shell's own test or loop header: runs nothing)", ("[[",), "builtin")
"""What covers a ``[[ … ]]``, ``(( … ))``, ``case … in``, ``for ((…))`` or ``for x in …``
header with no label and no problem: bash evaluates it without running anything (its
substitutions are parts of their own; a sensitive loop variable or arithmetic on a
variable's text is labelled, and then asked)."""


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ConfigError(f"unknown approval mode {mode!r} (expected one of: {', '.join(MODES)})")
    return mode  # type: ignore[return-value]


def decide(
    command: str,
    mode: Mode = "ask",
    rules: RuleSet | None = None,
    cwd: Path | str = ".",
    *,
    home: Path | None = None,
    root: Path | str | None = None,
) -> Decision:
    """Decide whether ``command`` may run without asking.

    - ``ask``: runs only if every part is covered by an allow rule.
    - ``auto``: runs unless a part has a high-risk label that no allow rule covers.
    - ``never-run``: never runs (``skip``).
    In ``ask`` and ``auto``, a deny rule matching any part, a command we cannot analyse
    (syntax error, control characters, ``eval``, a command name known only at run time…)
    or one with no command at all is always asked. Deny wins over allow.
    ``cwd`` is where the command starts; ``root`` the project root writes are judged
    against (the session's starting directory; defaults to ``cwd``).
    """
    mode = check_mode(mode)
    rules = rules if rules is not None else RuleSet()
    analysis = analyze(command, cwd, home=home, root=root)
    parts = []
    for i, part in enumerate(analysis.parts):
        labels = analysis.labels_of(i)
        uncovered = tuple(lab for lab in labels if lab.name in NEVER_BY_RULE)
        match = rules.allowing(part)
        if match is None and part.kind in ("test", "loop") and not labels and not part.problems:
            match = SHELL_TEST
        parts.append(
            PartDecision(
                part,
                labels,
                match if not uncovered else None,
                rules.denying(part),
                uncovered if match is not None else (),
            )
        )
    if mode == "never-run":
        return Decision("skip", mode, ("dry run: nothing is executed",), analysis, tuple(parts))

    reasons: list[str] = []
    if not analysis.parts:
        reasons.append("no command to run was found")
    reasons += [f"cannot be analysed: {why}" for why in analysis.all_problems]
    for pd in parts:
        if pd.denied_by is not None:
            reasons.append(f"{pd.part.display}: matches deny rule {pd.denied_by.pattern!r}")
        if pd.allowed_by is not None:
            continue
        if pd.uncovered:
            reasons += [
                f"{pd.part.display}: no rule covers this: {lab.reason}" for lab in pd.uncovered
            ]
        if mode == "ask" and not pd.uncovered:
            reasons.append(f"{pd.part.display}: no allow rule matches")
        elif mode == "auto":
            reasons += [
                f"{pd.part.display}: {lab.reason}"
                for lab in pd.labels
                if lab.high_risk and lab not in pd.uncovered
            ]
    reasons = list(dict.fromkeys(reasons))
    if reasons:
        return Decision("ask", mode, tuple(reasons), analysis, tuple(parts))
    why = "every part is allowed by a rule" if mode == "ask" else "auto mode: nothing high-risk"
    return Decision("run", mode, (why,), analysis, tuple(parts))
