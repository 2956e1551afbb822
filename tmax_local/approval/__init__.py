"""Approval: decide whether a model-proposed bash command may run, and ask the user if not.

Pure core: no UI, no model, nothing executed. The agent loop uses it like this::

    from tmax_local.approval import Gate, Approve, Edit, Reject, AllowRule

    gate = Gate.load(cwd=workdir, mode="ask")        # saved + trusted project rules
    verdict = gate.review(command, ask=approver, cwd=shell_cwd)
    if verdict.run:
        result = shell.run(verdict.command)          # EXACTLY this string
    else:
        observation = verdict.observation            # rejection reason / dry run

``approver`` is any callable ``(ApprovalRequest) -> Answer`` (see `Approver`); it is only
called when the policy says ``ask``. Answers: ``Approve()``, ``Edit(new_command)`` (runs
the edit as typed, without asking again: the user wrote it), ``Reject(reason)`` (the
reason is what the model sees), ``AllowRule(rules, scope="session"|"saved")`` (runs the
command and remembers the rules; ``request.suggested_rules`` proposes one per part).

Modes: ``ask`` (default; runs without asking only when every part is covered by an allow
rule), ``auto`` (runs unless a part has a high-risk label no rule covers), ``never-run``
(dry run). In every mode a deny rule, a parse failure, or anything we cannot analyse
(``eval``, a command name known only at run time, code piped into a shell, control
characters…) means "ask". Rules and labels apply to each simple command of a compound
one; see `rules` for the pattern syntax and `labels` for the risk labels.

The pieces, usable on their own: `analyze` (parse + label), `decide` (the policy),
`RuleSet`/`Rule` (matching), `store` (``rules.toml`` / ``.tmax-local.toml``).

The shell running approved commands should disable history expansion (``set +H``) and
aliases it did not define, so that the bytes approved mean what they meant when reviewed.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers; at run time names load on first use (below)
    from tmax_local.approval.analysis import Analysis, analyze
    from tmax_local.approval.gate import (
        DRY_RUN_OBSERVATION,
        AllowRule,
        Answer,
        ApprovalRequest,
        Approve,
        Approver,
        Edit,
        Gate,
        Reject,
        RunUnsandboxed,
        Scope,
        Verdict,
        rejection_observation,
        suggest_rules,
    )
    from tmax_local.approval.labels import HIGH_RISK, NEVER_BY_RULE, Label
    from tmax_local.approval.parts import Part, Problem, ProblemKind, Redirect, Word
    from tmax_local.approval.policy import MODES, Decision, Mode, PartDecision, decide
    from tmax_local.approval.rules import Rule, RuleMatch, RuleSet, explain, suggest_rule
    from tmax_local.approval.store import (
        PROJECT_FILE,
        load_project_rules,
        load_saved_rules,
        rules_path,
        save_rule,
    )

_WHERE: dict[str, str] = {
    "AllowRule": "tmax_local.approval.gate",
    "Analysis": "tmax_local.approval.analysis",
    "Answer": "tmax_local.approval.gate",
    "ApprovalRequest": "tmax_local.approval.gate",
    "Approve": "tmax_local.approval.gate",
    "Approver": "tmax_local.approval.gate",
    "DRY_RUN_OBSERVATION": "tmax_local.approval.gate",
    "Decision": "tmax_local.approval.policy",
    "Edit": "tmax_local.approval.gate",
    "Gate": "tmax_local.approval.gate",
    "RunUnsandboxed": "tmax_local.approval.gate",
    "HIGH_RISK": "tmax_local.approval.labels",
    "Label": "tmax_local.approval.labels",
    "MODES": "tmax_local.approval.policy",
    "Mode": "tmax_local.approval.policy",
    "NEVER_BY_RULE": "tmax_local.approval.labels",
    "PROJECT_FILE": "tmax_local.approval.store",
    "Part": "tmax_local.approval.parts",
    "PartDecision": "tmax_local.approval.policy",
    "Problem": "tmax_local.approval.parts",
    "ProblemKind": "tmax_local.approval.parts",
    "Redirect": "tmax_local.approval.parts",
    "Reject": "tmax_local.approval.gate",
    "Rule": "tmax_local.approval.rules",
    "RuleMatch": "tmax_local.approval.rules",
    "RuleSet": "tmax_local.approval.rules",
    "Scope": "tmax_local.approval.gate",
    "Verdict": "tmax_local.approval.gate",
    "Word": "tmax_local.approval.parts",
    "analyze": "tmax_local.approval.analysis",
    "decide": "tmax_local.approval.policy",
    "explain": "tmax_local.approval.rules",
    "load_project_rules": "tmax_local.approval.store",
    "load_saved_rules": "tmax_local.approval.store",
    "rejection_observation": "tmax_local.approval.gate",
    "rules_path": "tmax_local.approval.store",
    "save_rule": "tmax_local.approval.store",
    "suggest_rule": "tmax_local.approval.rules",
    "suggest_rules": "tmax_local.approval.gate",
}
"""Where each public name lives. Loaded on first use, so that importing one piece (the
data types in `parts`, the rules) does not load the parser or the policy."""


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DRY_RUN_OBSERVATION",
    "HIGH_RISK",
    "MODES",
    "NEVER_BY_RULE",
    "PROJECT_FILE",
    "AllowRule",
    "Analysis",
    "Answer",
    "ApprovalRequest",
    "Approve",
    "Approver",
    "Decision",
    "Edit",
    "Gate",
    "Label",
    "Mode",
    "Part",
    "PartDecision",
    "Problem",
    "ProblemKind",
    "Redirect",
    "Reject",
    "Rule",
    "RuleMatch",
    "RuleSet",
    "RunUnsandboxed",
    "Scope",
    "Verdict",
    "Word",
    "analyze",
    "decide",
    "explain",
    "load_project_rules",
    "load_saved_rules",
    "rejection_observation",
    "rules_path",
    "save_rule",
    "suggest_rule",
    "suggest_rules",
]
