"""The reasoning pane: one collapsible block per step, streamed as the model writes.

Each step shows the model's prose (the raw reply up to its ``<tool_call>`` markup) and,
under it, the proposed command and what became of it (approved, edited, rejected, its
exit code). Older steps collapse when a new one starts; any step can be reopened.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Collapsible, Static

from tmax_local.display import visible

_CALL_OPEN = "<tool_call>"


def visible_reasoning(raw: str) -> str:
    """The prose part of a raw reply: up to the first tool call, without think tags, with
    control sequences, bidi overrides and invisible characters made visible."""
    text = raw.split(_CALL_OPEN, 1)[0]
    # Hide a tool-call tag that is still being streamed ("<tool_c").
    for n in range(len(_CALL_OPEN) - 1, 0, -1):
        if text.endswith(_CALL_OPEN[:n]):
            text = text[:-n]
            break
    return visible(text.replace("<think>", "").replace("</think>", "").strip("\n"))


class StepView(Collapsible):
    """One model turn."""

    DEFAULT_CSS = """
    StepView { padding: 0; margin: 0; border-top: none; }
    StepView > Contents { padding: 0 0 0 1; }
    StepView .reasoning { color: $text-muted; }
    StepView .command { color: $text; background: $boost; }
    StepView .outcome { color: $text-muted; }
    StepView .outcome.-bad { color: $error; }
    StepView .outcome.-good { color: $success; }
    """

    def __init__(self, step: int, *, collapsed: bool = False) -> None:
        self.step = step
        self.raw = ""
        self.command: str | None = None
        self.outcome = ""
        self._reasoning = Static("", classes="reasoning", markup=False)
        self._command = Static("", classes="command", markup=False)
        self._outcome = Static("", classes="outcome", markup=False)
        self._command.display = False
        self._outcome.display = False
        super().__init__(
            self._reasoning,
            self._command,
            self._outcome,
            title=f"Step {step}",
            collapsed=collapsed,
        )

    def append(self, text: str) -> None:
        """Add streamed text; the pane repaints it at its next refresh tick."""
        self.raw += text

    def render_reasoning(self) -> None:
        self._reasoning.update(visible_reasoning(self.raw) or "…")

    def set_reasoning(self, raw: str) -> None:
        self.raw = raw
        self.render_reasoning()

    def set_command(self, command: str, note: str = "") -> None:
        self.command = command
        label = Text("$ ", style="bold")
        label.append(visible(command))
        if note:
            label.append(f"  {note}", style="italic")
        self._command.update(label)
        self._command.display = True

    def set_outcome(self, text: str, *, good: bool | None = None) -> None:
        self.outcome = text
        self._outcome.update(visible(text))
        self._outcome.display = True
        self._outcome.set_class(good is True, "-good")
        self._outcome.set_class(good is False, "-bad")


class ReasoningPane(VerticalScroll):
    """All steps of the session, newest at the bottom; follows the stream."""

    DEFAULT_CSS = """
    ReasoningPane { width: 1fr; height: 1fr; padding: 0 1 0 0; }
    ReasoningPane > .note { color: $text-muted; padding: 0 1; }
    ReasoningPane > .note.-warning { color: $warning; }
    ReasoningPane > .note.-error { color: $error; }
    ReasoningPane > .task { text-style: bold; padding: 0 1; background: $boost; }
    """

    REFRESH_S = 0.05
    """Streamed text is repainted at most this often (every token would cost decode speed)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.steps: dict[int, StepView] = {}
        self._stale: set[int] = set()
        self._tick_pending = False

    def current(self) -> StepView | None:
        if not self.steps:
            return None
        return self.steps[max(self.steps)]

    def step_view(self, step: int) -> StepView:
        view = self.steps.get(step)
        if view is None:
            self.flush()
            for old in self.steps.values():
                old.collapsed = True
            view = StepView(step)
            self.steps[step] = view
            self.mount(view)
            self.scroll_end(animate=False)
        return view

    def add_task(self, text: str) -> None:
        self.mount(Static(Text(f"▶ {text}"), classes="task"))
        self.scroll_end(animate=False)

    def add_note(self, text: str, *, level: str = "info") -> Static:
        note = Static(Text(visible(text)), classes=f"note -{level}")
        self.mount(note)
        self.scroll_end(animate=False)
        return note

    def append(self, step: int, text: str) -> None:
        self.step_view(step).append(text)
        self._stale.add(step)
        if not self._tick_pending:
            self._tick_pending = True
            self.set_timer(self.REFRESH_S, self.flush)

    def flush(self) -> None:
        """Repaint the steps whose text changed since the last tick."""
        self._tick_pending = False
        stale, self._stale = self._stale, set()
        for step in stale:
            view = self.steps.get(step)
            if view is not None:
                view.render_reasoning()
        if stale:
            self.scroll_end(animate=False)

    def clear_all(self) -> None:
        self.steps.clear()
        self.remove_children()
