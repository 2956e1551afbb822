"""The approval bar: the proposed command, its risk labels, the rule an "always" would save.

The bar only shows a request and reports which key the user pressed (`ApprovalBar.Chosen`);
the app turns that into an answer of `tmax_local.approval` (possibly after a dialog).
Nothing runs while the bar waits: the agent thread is blocked on the answer.
`approval_view` and `rule_preview` turn an approval request into what the bar and the rule
dialog show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget

from tmax_local.errors import ConfigError

if TYPE_CHECKING:
    from tmax_local.approval import ApprovalRequest, Part

# Risk severity → style of the label badge.
_SEVERITY_STYLE = {
    "high": "bold white on red",
    "medium": "bold black on yellow",
    "low": "black on cyan",
}


@dataclass(frozen=True)
class ApprovalView:
    """What the bar shows for one request (built from the approval module's request)."""

    command: str
    labels: list[tuple[str, str]] = field(default_factory=list)  # (label, severity)
    reason: str = ""  # why the policy asks
    rules: list[str] = field(default_factory=list)  # what "always allow" would save
    rule_explanation: str = ""  # how those rules would match
    step: int = 0
    ignored: list[str] = field(default_factory=list)  # further tool calls that won't run


def approval_view(
    request: ApprovalRequest, step: int = 0, ignored: Sequence[str] = ()
) -> ApprovalView:
    """What the approval bar shows for a request of the approval gate."""
    from tmax_local.approval import explain

    labels = [(lab.name, "high" if lab.high_risk else "medium") for lab in request.labels]
    parts = request.analysis.parts
    explanations = []
    for rule in request.suggested_rules:
        matched = [m.part.text for m in explain(rule, parts) if m.matches]
        if matched:
            explanations.append(f"`{rule}` allows: " + "; ".join(matched))
        else:
            explanations.append(f"`{rule}` matches no part of this command")
    return ApprovalView(
        command=request.command,
        labels=labels,
        reason="; ".join(request.reasons),
        rules=list(request.suggested_rules),
        rule_explanation=" · ".join(explanations),
        step=step,
        ignored=list(ignored),
    )


def rule_preview(parts: Sequence[Part], rule: str) -> str:
    """How ``rule`` would match the parts of the pending command (for the rule dialog)."""
    from tmax_local.approval import explain

    try:
        matches = explain(rule, parts)
    except ConfigError as err:
        return f"invalid rule: {err}"
    hits = [m.part.text for m in matches if m.matches]
    return ("allows: " + "; ".join(hits)) if hits else "matches no part of this command"


class ApprovalBar(Widget, can_focus=True):
    """Docked above the task input while a command waits for the user's answer."""

    DEFAULT_CSS = """
    ApprovalBar {
        height: auto; max-height: 50%; display: none;
        border-left: thick $warning; background: $warning 10%; padding: 0 1;
    }
    ApprovalBar.-active { display: block; }
    ApprovalBar:focus { border-left: thick $accent; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a,y", "choose('approve')", "Approve"),
        Binding("e", "choose('edit')", "Edit"),
        Binding("r,n", "choose('reject')", "Reject"),
        Binding("A", "choose('always')", "Always allow"),
        Binding("m", "choose('mode')", "Mode"),
    ]

    @dataclass
    class Chosen(Message):
        choice: str  # approve | edit | reject | always | mode
        view: ApprovalView

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: ApprovalView | None = None
        self.mode = "ask"

    def show(self, view: ApprovalView, mode: str) -> None:
        self.view = view
        self.mode = mode
        self.add_class("-active")
        self.refresh(layout=True)
        self.focus()

    def hide(self) -> None:
        self.view = None
        self.remove_class("-active")
        self.refresh(layout=True)

    @property
    def active(self) -> bool:
        return self.view is not None

    def action_choose(self, choice: str) -> None:
        if self.view is not None:
            self.post_message(self.Chosen(choice, self.view))

    def render(self) -> Group | Text:
        view = self.view
        if view is None:
            return Text("")
        head = Text()
        head.append(f"Step {view.step}: run this command? ", style="bold")
        if view.labels:
            for label, severity in view.labels:
                head.append(f" {label} ", style=_SEVERITY_STYLE.get(severity, "reverse"))
                head.append(" ")
        else:
            head.append(" no risk labels ", style="italic")
        parts: list = [head]
        parts.append(
            Syntax(
                view.command,
                "bash",
                theme="ansi_dark" if self.app.current_theme.dark else "ansi_light",
                word_wrap=True,
                background_color="default",
            )
        )
        if view.ignored:
            parts.append(
                Text(
                    f"({len(view.ignored)} further tool call(s) in this reply will not run)",
                    style="italic",
                )
            )
        if view.reason:
            parts.append(Text(f"asks because: {view.reason}", style="dim"))
        if view.rules:
            rule = Text("always allow would save: ", style="dim")
            rule.append("  ".join(view.rules), style="bold")
            if view.rule_explanation:
                rule.append(f"  ({view.rule_explanation})", style="dim")
            parts.append(rule)
        else:
            parts.append(
                Text("no rule can cover this command: it will always be asked", style="dim")
            )
        keys = Text()
        for key, what in (
            ("a", "approve"),
            ("e", "edit"),
            ("r", "reject"),
            ("A", "always allow"),
            ("m", f"mode: {self.mode}"),
        ):
            keys.append(f" {key} ", style="reverse bold")
            keys.append(f" {what}  ")
        parts.append(keys)
        return Group(*parts)
