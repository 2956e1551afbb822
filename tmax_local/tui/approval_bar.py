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

from rich.cells import chop_cells
from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget

from tmax_local.display import visible
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
    from tmax_local.approval.rules import suggestion_notes

    labels = [(lab.name, "high" if lab.high_risk else "medium") for lab in request.labels]
    parts = request.analysis.parts
    explanations = []
    for rule in request.suggested_rules:
        matched = [m.part.text for m in explain(rule, parts) if m.matches]
        if matched:
            explanations.append(f"`{rule}` allows: " + "; ".join(matched))
        else:
            explanations.append(f"`{rule}` matches no part of this command")
    explanations += suggestion_notes(
        (pd.part, [lab.name for lab in pd.labels])
        for pd in request.decision.parts
        if pd.allowed_by is None
    )
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
        Binding("down", "scroll_command(1)", "Scroll down", show=False),
        Binding("up", "scroll_command(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_command(1000)", "Page down", show=False),
        Binding("pageup", "scroll_command(-1000)", "Page up", show=False),
        Binding("end", "scroll_command(1000000)", "End", show=False),
        Binding("home", "scroll_command(-1000000)", "Home", show=False),
        Binding("u", "choose('unsandboxed')", "Run unsandboxed", show=False),
    ]

    @dataclass
    class Chosen(Message):
        choice: str  # approve | edit | reject | always | mode | unsandboxed
        view: ApprovalView

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: ApprovalView | None = None
        self.mode = "ask"
        self.scroll_row = 0
        self.sandboxed = False  # offer "u: run unsandboxed" (this command, once)

    def show(self, view: ApprovalView, mode: str, *, sandboxed: bool = False) -> None:
        self.view = view
        self.mode = mode
        self.scroll_row = 0
        self.sandboxed = sandboxed
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

    # -- the command window: the whole bar fits, the command scrolls ------------------
    def command_window(self) -> tuple[list[str], int, int]:
        """The command rows shown now, and how many rows are above and below them."""
        view = self.view
        if view is None:
            return [], 0, 0
        rows = command_rows(view.command, max(10, self.size.width - 3))
        budget = self._command_budget()
        self.scroll_row = max(0, min(self.scroll_row, len(rows) - budget))
        shown = rows[self.scroll_row : self.scroll_row + budget]
        return shown, self.scroll_row, len(rows) - self.scroll_row - len(shown)

    def _command_budget(self) -> int:
        """Rows the command may take: the bar is at most half the screen, and the labels,
        reasons, rule and keys are shown in full."""
        view = self.view
        if view is None:
            return 0
        width = max(10, self.size.width - 3)
        other = 5 + len(chop_cells(visible(view.reason), width)) if view.reason else 5
        half = max(8, self.app.size.height // 2)
        return max(3, half - other - 2)

    def action_scroll_command(self, delta: int) -> None:
        """Scroll the command by ``delta`` rows (±1000: a page, ±1000000: to an end)."""
        if abs(delta) >= 1000000:  # home / end (clamped when shown)
            delta = 10**9 if delta > 0 else -(10**9)
        elif abs(delta) >= 1000:
            delta = (self._command_budget() - 1) * (1 if delta > 0 else -1)
        self.scroll_row = max(0, self.scroll_row + delta)
        self.refresh(layout=True)

    def render(self) -> Group | Text:
        view = self.view
        if view is None:
            return Text("")
        # Labels and reasons first; model-written text is shown made visible (display.py).
        head = Text()
        head.append(f"Step {view.step}: run this command? ", style="bold")
        if view.labels:
            for label, severity in view.labels:
                head.append(f" {label} ", style=_SEVERITY_STYLE.get(severity, "reverse"))
                head.append(" ")
        else:
            head.append(" no risk labels ", style="italic")
        parts: list = [head]
        if view.reason:
            parts.append(Text(f"asks because: {visible(view.reason)}", style="dim"))
        if view.ignored:
            parts.append(
                Text(
                    f"({len(view.ignored)} further tool call(s) in this reply will not run)",
                    style="italic",
                )
            )
        shown, above, below = self.command_window()
        parts.append(
            Syntax(
                "\n".join(shown),
                "bash",
                theme="ansi_dark" if self.app.current_theme.dark else "ansi_light",
                word_wrap=False,
                background_color="default",
            )
        )
        if above or below:
            fold = Text(style="bold")
            if below:
                fold.append(f"▼ {below} more line(s) below")
            if above:
                fold.append(("  " if below else "") + f"▲ {above} line(s) above")
            fold.append("  (↑/↓, PgUp/PgDn, Home/End scroll the command)", style="dim")
            parts.append(fold)
        if view.rules:
            rule = Text("always allow would save: ", style="dim")
            rule.append(visible("  ".join(view.rules)), style="bold")
            if view.rule_explanation:
                rule.append(f"  ({visible(view.rule_explanation)})", style="dim")
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
            *((("u", "run unsandboxed"),) if self.sandboxed else ()),
        ):
            keys.append(f" {key} ", style="reverse bold")
            keys.append(f" {what}  ")
        parts.append(keys)
        return Group(*parts)


def command_rows(command: str, width: int) -> list[str]:
    """``command`` as the screen rows it takes at ``width`` cells, made visible."""
    rows: list[str] = []
    for line in visible(command).split("\n"):
        line = line.expandtabs(4)
        rows += chop_cells(line, width) if line else [""]
    return rows
