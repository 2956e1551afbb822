"""Modal screens: help, edit a command, reason for a rejection, confirm an allow rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, RadioButton, RadioSet, TextArea

HELP_TEXT = """\
# tmax-local

The agent reasons on the **left**; its commands run in the live terminal on the **right**.
Every command waits for you unless a rule or the approval mode allows it.

| Key | Where | Does |
|---|---|---|
| Enter | task box | start the agent, or queue a follow-up for its next turn |
| a | approval bar | approve: run the command as shown |
| e | approval bar | edit the command first (what you approve is what runs) |
| r | approval bar | reject, with a reason the model will read |
| A | approval bar | always allow: shows the rule before saving it |
| m / F3 | anywhere | switch approval mode (ask → auto → never-run) |
| u | approval bar | run this command once outside the sandbox (when the shell is sandboxed) |
| F4 | anywhere | allow / block the network in the sandbox (restarts the shell) |
| Ctrl+T | anywhere | take over the terminal: keys go to the shell |
| Ctrl+] | terminal | hand control back to the app |
| Shift+PgUp/PgDn, wheel | terminal | scroll back through the terminal's history |
| Ctrl+C | terminal | interrupt the running command (take-over mode) |
| Ctrl+X | anywhere | stop the agent (its generation and any pending request) |
| Ctrl+O | anywhere | export the session (Markdown) and the terminal recording (.cast) |
| Ctrl+Z | a step | undo: put the files back as they were before that step (asks first) |
| F5 | anywhere | download and convert the model, when it is missing |
| F1 / ? | anywhere | this help |
| Ctrl+Q | anywhere | quit |

Modes: **ask** asks for anything not covered by a rule; **auto** runs commands without
risk labels and asks for the rest; **never-run** rejects every command (read-only session).
With **auto** or allow rules the shell is sandboxed by default (`--sandbox`): writes only in
the project, no network, credentials unreadable; the status bar shows it.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f1,question_mark", "dismiss", "Close")
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: round $accent; background: $surface;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP_TEXT)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class _Dialog(ModalScreen[object]):
    DEFAULT_CSS = """
    _Dialog { align: center middle; }
    _Dialog > Vertical {
        width: 90%; max-width: 100; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    _Dialog Label.title { text-style: bold; }
    _Dialog Label.hint { color: $text-muted; }
    _Dialog Horizontal { height: auto; }
    _Dialog Button { margin: 0 1 0 0; min-width: 10; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditCommandScreen(_Dialog):
    """An editor pre-filled with the proposed command; returns the edited text or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Approve edited", priority=True),
    ]

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Edit the command — what you approve is what runs", classes="title")
            yield TextArea(self.command, language=None, id="editor", soft_wrap=True)
            yield Label("Ctrl+S approve the edited command · Esc cancel", classes="hint")
            with Horizontal():
                yield Button("Approve edited", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        editor = self.query_one(TextArea)
        editor.styles.height = min(12, max(3, self.command.count("\n") + 3))
        editor.focus()

    def action_submit(self) -> None:
        text = self.query_one(TextArea).text.strip("\n")
        self.dismiss(text if text.strip() else None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.dismiss(None)


class ReasonScreen(_Dialog):
    """Asks why a command is rejected; the reason goes back to the model."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Reject — tell the model why (Enter sends, Esc cancels)", classes="title")
            yield Label(Text("$ " + self.command), classes="hint")
            yield Input(placeholder="reason (optional)", id="reason")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())


class RuleScreen(_Dialog):
    """Shows the rule(s) an "always allow" would save, editable, with a live preview of
    what each matches; returns (rules, scope) or None."""

    def __init__(
        self, command: str, rules: list[str], preview: Callable[[str], str] | None = None
    ) -> None:
        super().__init__()
        self.command = command
        self.rules = rules
        self.preview = preview or (lambda rule: "")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Always allow — these rules will be saved:", classes="title")
            yield Label(Text("$ " + self.command), classes="hint")
            for i, rule in enumerate(self.rules):
                yield Input(rule, id=f"rule-{i}", classes="rule")
                yield Label(Text(self.preview(rule)), id=f"preview-{i}", classes="hint")
            with RadioSet(id="scope"):
                yield RadioButton("this session only", value=True, id="session")
                yield RadioButton("saved for later sessions (rules.toml)", id="saved")
            yield Label("Enter saves and runs the command · Esc cancels", classes="hint")
            with Horizontal():
                yield Button("Save rule & run", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#rule-0", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("rule-"):
            index = event.input.id.split("-", 1)[1]
            self.query_one(f"#preview-{index}", Label).update(Text(self.preview(event.value)))

    def _result(self) -> tuple[list[str], str] | None:
        rules = [i.value.strip() for i in self.query(".rule").results(Input) if i.value.strip()]
        if not rules:
            return None
        pressed = self.query_one(RadioSet).pressed_button
        scope = "saved" if pressed is not None and pressed.id == "saved" else "session"
        return rules, scope

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(self._result())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._result() if event.button.id == "ok" else None)
