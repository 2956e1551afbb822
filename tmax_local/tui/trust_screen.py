"""The dialog that asks whether to trust a repository's ``.tmax-local.toml`` rules.

It lists every rule the file asks for (and the ones that are never applied), and returns
True only when the user chooses "Trust". Escape, "Don't trust" or closing means no.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tmax_local.approval.store import ProjectRules
from tmax_local.approval.trust import describe_project


class TrustScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    TrustScreen { align: center middle; }
    TrustScreen > Vertical {
        width: 90%; max-width: 100; height: auto; max-height: 90%;
        border: round $warning; background: $surface; padding: 0 1;
    }
    TrustScreen VerticalScroll { height: auto; max-height: 20; }
    TrustScreen Label.title { text-style: bold; }
    TrustScreen Label.hint { color: $text-muted; }
    TrustScreen Horizontal { height: auto; }
    TrustScreen Button { margin: 0 1 0 0; min-width: 10; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "refuse", "Don't trust")]

    def __init__(self, project: ProjectRules) -> None:
        super().__init__()
        self.project = project

    def compose(self) -> ComposeResult:
        lines = describe_project(self.project)
        with Vertical():
            yield Label("This project comes with approval rules", classes="title")
            with VerticalScroll():
                for line in lines:
                    yield Label(Text(line), classes="rule-line")
            yield Label(
                "Trusted rules let matching commands run without asking, until the file "
                "changes. Esc: don't trust",
                classes="hint",
            )
            with Horizontal():
                yield Button("Trust", variant="warning", id="trust")
                yield Button("Don't trust", variant="primary", id="refuse")

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "trust")

    def action_refuse(self) -> None:
        self.dismiss(False)
