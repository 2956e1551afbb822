"""The gate between the model and the shell: policy first, then (maybe) the user.

``Gate.review(command, ask)`` returns a `Verdict`. When ``verdict.run`` is true, execute
``verdict.command`` — that exact string, nothing rebuilt from it. Otherwise give the model
``verdict.observation``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

from tmax_local.approval.analysis import Analysis
from tmax_local.approval.labels import Label
from tmax_local.approval.live import LiveShell, live_reasons
from tmax_local.approval.policy import Decision, Mode, check_mode, decide
from tmax_local.approval.rules import Rule, RuleKind, RuleSet, suggest_rule
from tmax_local.approval.store import load_project_rules, load_saved_rules, rules_path, save_rule
from tmax_local.shell.state import SnapshotError

Scope = Literal["session", "saved"]

DRY_RUN_OBSERVATION = "Dry run (never-run mode): the command was not executed."


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Approve:
    """Run the command exactly as shown."""


@dataclass(frozen=True)
class Edit:
    """Run ``command`` instead — the user's edit, run exactly as typed (not re-asked: the
    user wrote it). A blank edit counts as a rejection."""

    command: str


@dataclass(frozen=True)
class Reject:
    """Do not run it; ``reason`` is what the model is told."""

    reason: str = ""


@dataclass(frozen=True, init=False)
class AllowRule:
    """Run the command and remember rule(s) for similar ones.

    ``rules`` is one pattern or several (one per part, see `ApprovalRequest.suggested_rules`);
    ``scope`` is ``session`` (memory only) or ``saved`` (also written to ``rules.toml``).
    """

    rules: tuple[str, ...]
    scope: Scope = "session"

    def __init__(self, rules: str | tuple[str, ...] | list[str], scope: Scope = "session"):
        patterns = (rules,) if isinstance(rules, str) else tuple(rules)
        if scope not in ("session", "saved"):
            raise ValueError(f"scope must be 'session' or 'saved', not {scope!r}")
        object.__setattr__(self, "rules", patterns)
        object.__setattr__(self, "scope", scope)


@dataclass(frozen=True)
class RunUnsandboxed:
    """Run the command as shown, this once outside the shell's sandbox (a fresh bash
    with the shell's directory and exported variables)."""


Answer = Approve | Edit | Reject | AllowRule | RunUnsandboxed


@dataclass(frozen=True)
class ApprovalRequest:
    """What a UI shows when the user must decide."""

    command: str
    decision: Decision
    suggested_rules: tuple[str, ...]
    """One allow rule per part that could be covered by one (empty when none can)."""

    @property
    def analysis(self) -> Analysis:
        return self.decision.analysis

    @property
    def labels(self) -> tuple[Label, ...]:
        return self.decision.analysis.labels

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.decision.reasons


class Approver(Protocol):
    """Anything that can answer an `ApprovalRequest` (a TUI dialog, a test script…).

    It is called from the agent's thread and may block until the user answers.
    """

    def __call__(self, request: ApprovalRequest) -> Answer: ...


@dataclass(frozen=True)
class Verdict:
    """The outcome of a review."""

    run: bool
    command: str | None
    """When ``run``: the exact string to execute (the reviewed one, or the user's edit)."""
    observation: str | None
    """When not ``run``: what the model should see instead of output."""
    decision: Decision
    answer: Answer | None = None
    """The user's answer, None when the policy decided alone."""
    new_rules: tuple[Rule, ...] = field(default=())

    @property
    def unsandboxed(self) -> bool:
        """The user chose to run it outside the sandbox."""
        return self.run and isinstance(self.answer, RunUnsandboxed)

    @property
    def approved_by(self) -> Literal["rule", "auto", "user"] | None:
        if not self.run:
            return None
        if self.answer is not None:
            return "user"
        return "rule" if self.decision.by_rule else "auto"


def suggest_rules(decision: Decision) -> tuple[str, ...]:
    """A rule for each part not already allowed (deduplicated; none for unanalysable parts)."""
    out: list[str] = []
    for pd in decision.parts:
        if pd.allowed_by is not None or pd.uncovered:
            continue
        rule = suggest_rule(pd.part, [lab.name for lab in pd.labels])
        if rule is not None and rule not in out:
            out.append(rule)
    return tuple(out)


def rejection_observation(reason: str) -> str:
    reason = reason.strip()
    return (
        f"The user rejected this command: {reason}"
        if reason
        else ("The user rejected this command.")
    )


# --------------------------------------------------------------------------- the gate


class Gate:
    """Policy + rules + an approver. One per agent session.

    ``rules`` are fixed at creation (saved + project); rules the user adds through
    `AllowRule` join them. Project and saved files are read once, so a command that
    rewrites them mid-session cannot widen this session's rules.
    """

    def __init__(
        self,
        mode: Mode = "ask",
        rules: RuleSet | None = None,
        *,
        cwd: Path | str = ".",
        rules_file: Path | None = None,
        live: LiveShell | None = None,
    ):
        self.mode: Mode = check_mode(mode)
        self.cwd = Path(cwd)
        self.base_rules = rules if rules is not None else RuleSet()
        self.session_rules = RuleSet()
        self.rules_file = rules_file
        self.live = live
        """The shell commands run in (see `review`); a ``live=`` given to `review` wins."""
        self._lock = threading.Lock()

    @classmethod
    def load(cls, cwd: Path | str, mode: Mode = "ask", *, rules_file: Path | None = None) -> Gate:
        """A gate with the user's saved rules and the project's ``.tmax-local.toml`` rules."""
        rules_file = rules_file if rules_file is not None else rules_path()
        rules = load_saved_rules(rules_file) + load_project_rules(cwd)
        return cls(mode, rules, cwd=cwd, rules_file=rules_file)

    @property
    def rules(self) -> RuleSet:
        with self._lock:
            return self.base_rules + self.session_rules

    def decide(self, command: str, *, cwd: Path | str | None = None) -> Decision:
        start = cwd if cwd is not None else self.cwd
        return decide(command, self.mode, self.rules, start, root=self.cwd)

    def _check_live(self, decision: Decision, live: LiveShell) -> Decision:
        try:
            reasons = live_reasons(decision, live.live_state(), self.cwd)
        except SnapshotError as err:
            reasons = [f"cannot check what the shell would run: {err}"]
        if not reasons:
            return decision
        return replace(decision, action="ask", reasons=tuple(reasons))

    def add_rule(self, pattern: str, scope: Scope = "session", kind: RuleKind = "allow") -> Rule:
        """Remember a rule for this session, and in the rules file when ``scope="saved"``."""
        rule = Rule.parse(pattern, "session" if scope == "session" else "saved")
        if scope == "saved":
            save_rule(pattern, kind, self.rules_file)
        with self._lock:
            self.session_rules = self.session_rules.with_rule(rule, kind)
        return rule

    def review(
        self,
        command: str,
        ask: Approver,
        *,
        cwd: Path | str | None = None,
        live: LiveShell | None = None,
    ) -> Verdict:
        """Decide, ask the user if needed, and say what (if anything) to run.

        ``live`` is the shell the command will run in: when the policy would run the
        command unasked, the shell's state is checked first (`tmax_local.approval.live`)
        and any surprise turns the decision into a question. Without it, only the
        command's text is judged.
        """
        decision = self.decide(command, cwd=cwd)
        if decision.action == "skip":
            return Verdict(False, None, DRY_RUN_OBSERVATION, decision)
        live = live if live is not None else self.live
        if decision.action == "run" and live is not None:
            decision = self._check_live(decision, live)
        if decision.action == "run":
            return Verdict(True, command, None, decision)
        request = ApprovalRequest(command, decision, suggest_rules(decision))
        answer = ask(request)
        if isinstance(answer, Approve | RunUnsandboxed):
            return Verdict(True, command, None, decision, answer)
        if isinstance(answer, Edit):
            if not answer.command.strip():
                return Verdict(
                    False, None, rejection_observation("they cleared the command"), decision, answer
                )
            return Verdict(True, answer.command, None, decision, answer)
        if isinstance(answer, Reject):
            return Verdict(False, None, rejection_observation(answer.reason), decision, answer)
        if isinstance(answer, AllowRule):
            for pattern in answer.rules:  # all valid, or none added
                Rule.parse(pattern)
            added = tuple(self.add_rule(p, answer.scope) for p in answer.rules)
            return Verdict(True, command, None, decision, answer, added)
        raise TypeError(
            "an approver must return Approve, Edit, Reject, AllowRule or RunUnsandboxed,"
            f" not {answer!r}"
        )
