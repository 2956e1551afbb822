"""Undo in the app: the confirmation dialog for "undo to before this step".

The app asks the session's checkpointer for the change (``preview_step``), shows it here,
and restores only when the user confirms (``restore_step``); the agent then reads a note
(``tmax_local.undo.checkpointer.restore_note``) in its next turn.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from tmax_local.errors import TmaxError

SHOW = 200


def change_lines(change: Any) -> list[tuple[str, str]]:
    """(mark, path) rows: + re-created, ~ put back, - deleted."""
    return (
        [("+", p) for p in change.added]
        + [("~", p) for p in change.modified]
        + [("-", p) for p in change.deleted]
    )


class UndoScreen(ModalScreen[bool]):
    """Asks before restoring the project to before a step. Dismisses with True to restore."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Restore"),
    ]
    DEFAULT_CSS = """
    UndoScreen { align: center middle; }
    UndoScreen > Vertical {
        width: 90%; max-width: 100; height: auto; max-height: 90%;
        border: round $warning; background: $surface; padding: 0 1;
    }
    UndoScreen Label.title { text-style: bold; }
    UndoScreen Label.hint { color: $text-muted; }
    UndoScreen VerticalScroll { height: auto; max-height: 20; }
    UndoScreen Horizontal { height: auto; }
    UndoScreen Button { margin: 0 1 0 0; min-width: 10; }
    """

    def __init__(self, step: int, change: Any, root: str) -> None:
        super().__init__()
        self.step, self.change, self.root = step, change, root

    def compose(self) -> ComposeResult:
        rows = change_lines(self.change)
        with Vertical():
            yield Label(f"Undo to before step {self.step}?", classes="title")
            yield Label(f"{self.root}: {self.change.summary()}", classes="hint")
            with VerticalScroll():
                for mark, path in rows[:SHOW]:
                    yield Static(Text(f"{mark} {path}"), classes="change")
                if len(rows) > SHOW:
                    yield Static(Text(f"… and {len(rows) - SHOW} more"))
            yield Label(
                "Ignored and oversized files stay as they are; the project's .git is put "
                "back too. This restore can itself be undone (tmax-local checkpoints).",
                classes="hint",
            )
            with Horizontal():
                yield Button("Restore (y)", id="restore", variant="warning")
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "restore")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


# -- the flow, called by the app ----------------------------------------------------------
def step_to_undo(app: Any) -> int | None:
    """The step whose block has the focus, else the latest step with a checkpoint."""
    from tmax_local.tui.reasoning import StepView

    node = app.focused
    while node is not None:
        if isinstance(node, StepView):
            return node.step if node.step in app.checkpoints else None
        node = node.parent
    return max(app.checkpoints) if app.checkpoints else None


def start_undo(app: Any) -> None:
    """The undo key: check, show what would change, ask, restore (UI thread)."""
    step = step_to_undo(app)
    if step is None:
        app.notify("No checkpoint to go back to (focus a step that ran a command).", title="Undo")
        return
    if app.status.info.state == "running":
        app.notify(
            "A command is running: wait for it or stop the agent (Ctrl+X) before undoing.",
            title="Undo",
        )
        return
    checkpoint = app.checkpoints[step]

    def preview() -> None:
        try:
            root, change = app.session.undo_preview(checkpoint)
        except TmaxError as err:
            app.call_from_thread(app.notify, str(err), title="Undo", severity="error")
            return
        if change.empty:
            app.call_from_thread(
                app.notify,
                f"The project already matches its state before step {step}.",
                title="Undo",
            )
            return
        app.call_from_thread(
            app.push_screen, UndoScreen(step, change, str(root)), lambda ok: confirmed(ok, change)
        )

    def confirmed(ok: bool | None, change: Any) -> None:
        if ok:
            app.run_worker(lambda: restore(change), thread=True, group="undo", exit_on_error=False)

    def restore(change: Any) -> None:
        try:
            note, label = app.session.undo_restore(checkpoint, step)
        except TmaxError as err:
            app.call_from_thread(app.notify, str(err), title="Undo", severity="error")
            return
        app.call_from_thread(restored, note, label)

    def restored(note: str, label: str) -> None:
        session = app.session.checkpoint_session or ""
        app.reasoning.add_note(
            f"Restored the project to before step {step}. To undo this: "
            f"tmax-local restore {session} {label}",
            level="warning",
        )
        if app.agent_running:
            app.session.queue_instruction(note)

    app.run_worker(preview, thread=True, group="undo", exclusive=True, exit_on_error=False)
