"""The terminal pane's emulator and its thread hand-off, driven through a real Textual app."""

from __future__ import annotations

import threading

import pytest
from pilot_support import wait_until
from textual.app import App, ComposeResult

from tmax_local.tui.terminal import TerminalPane, key_to_bytes


class Recorder:
    """A TerminalBackend that records what the pane sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.interrupts = 0
        self.sizes: list[tuple[int, int]] = []

    def send_input(self, data: bytes) -> None:
        self.sent.append(data)

    def interrupt(self) -> None:
        self.interrupts += 1

    def resize(self, rows: int, cols: int) -> None:
        self.sizes.append((rows, cols))


class PaneApp(App):
    def __init__(self, backend: Recorder) -> None:
        super().__init__()
        self.backend = backend
        self.alt_events: list[bool] = []

    def on_terminal_pane_alt_screen(self, message: TerminalPane.AltScreen) -> None:
        self.alt_events.append(message.active)

    def compose(self) -> ComposeResult:
        yield TerminalPane(self.backend, id="term")


async def test_colours_progress_and_wide_chars() -> None:
    app = PaneApp(Recorder())
    async with app.run_test(size=(50, 10)) as pilot:
        pane = app.query_one(TerminalPane)
        pane.feed(b"\x1b[1;31mERR\x1b[0m ok\r\n")
        for pct in (10, 50, 100):  # a progress bar redrawn in place
            pane.feed(f"\r[{'#' * (pct // 10):<10}] {pct}%".encode())
        pane.feed("\r\n中文 done".encode())
        await pilot.pause()
        lines = pane.text().splitlines()
        assert lines[0] == "ERR ok"
        assert lines[1] == "[##########] 100%"
        assert lines[2].startswith("中") and lines[2].endswith("done")
        strip = pane.render_line(0)
        styles = [seg.style for seg in strip if seg.text.startswith("ERR")]
        assert styles and styles[0].color is not None and styles[0].color.name == "red"
        assert styles[0].bold


async def test_alternate_screen_restores_main_screen() -> None:
    app = PaneApp(Recorder())
    async with app.run_test(size=(40, 8)) as pilot:
        pane = app.query_one(TerminalPane)
        pane.feed(b"$ vim notes\r\n")
        pane.feed(b"\x1b[?1049h\x1b[H\x1b[2J~\r\n~\x1b[8;1H-- INSERT --")
        await pilot.pause()
        assert pane.screen_model.in_alt_screen
        assert "INSERT" in pane.text() and "vim notes" not in pane.text()
        pane.feed(b"\x1b[?1049l")
        await wait_until(
            pilot, lambda: app.alt_events == [True, False], "alt-screen messages", 10.0
        )
        assert pane.text() == "$ vim notes"


async def test_bursts_from_a_thread_collapse_and_arrive_in_order() -> None:
    app = PaneApp(Recorder())
    async with app.run_test(size=(40, 8)) as pilot:
        pane = app.query_one(TerminalPane)
        n = 2000

        def flood() -> None:
            for i in range(n):
                pane.feed_threadsafe(f"{i}\r\n".encode())

        t = threading.Thread(target=flood)
        t.start()
        t.join()
        await wait_until(pilot, lambda: str(n - 1) in pane.text(), "last line", 10.0)
        assert pane.text().splitlines()[-1] == str(n - 1)
        assert pane.flushes < n  # bursts were collapsed into fewer repaints


async def test_resize_reaches_backend_and_takeover_forwards_keys() -> None:
    backend = Recorder()
    app = PaneApp(backend)
    async with app.run_test(size=(60, 12)) as pilot:
        pane = app.query_one(TerminalPane)
        await wait_until(pilot, lambda: (12, 60) in backend.sizes, "initial size", 10.0)
        await pilot.resize_terminal(70, 15)
        await wait_until(pilot, lambda: backend.sizes[-1] == (15, 70), "resize")
        assert (pane.screen_model.lines, pane.screen_model.columns) == (15, 70)
        await pilot.press("a")  # not taken over: nothing goes to the PTY
        assert backend.sent == []
        pane.takeover = True
        await pilot.press("l", "s", "enter", "up", "ctrl+d", "ctrl+c")
        assert b"".join(backend.sent) == b"ls\r\x1b[A\x04"
        assert backend.interrupts == 1
        await pilot.press("ctrl+right_square_bracket")
        assert not pane.takeover
        await pilot.press("x")
        assert b"x" not in b"".join(backend.sent)


@pytest.mark.parametrize(
    ("key", "char", "app_cursor", "expected"),
    [
        ("up", None, True, b"\x1bOA"),
        ("left", None, False, b"\x1b[D"),
        ("ctrl+a", None, False, b"\x01"),
        ("escape", None, False, b"\x1b"),
        ("q", "q", False, b"q"),
        ("é", "é", False, "é".encode()),
    ],
)
def test_key_to_bytes(key: str, char: str | None, app_cursor: bool, expected: bytes) -> None:
    assert key_to_bytes(key, char, app_cursor=app_cursor) == expected


def test_flood_skips_only_lines_that_scroll_away_unseen() -> None:
    import pyte

    from tmax_local.tui.terminal import EmulatorScreen, skip_scrolled_away

    flood = b"".join(f"\x1b[32mline {i}\x1b[0m\r\n".encode() for i in range(20000))
    kept = skip_scrolled_away(flood, 24)
    assert len(kept) < len(flood) // 4
    full, fast = EmulatorScreen(80, 24), EmulatorScreen(80, 24)
    pyte.ByteStream(full).feed(flood)
    pyte.ByteStream(fast).feed(kept)
    assert fast.display == full.display  # the same visible screen

    # Anything beyond colours in the skipped part (here: the alternate screen) disables it.
    alt = b"\x1b[?1049h" + flood
    assert skip_scrolled_away(alt, 24) == alt
    moves = b"\x1b[5;1Hx" + flood
    assert skip_scrolled_away(moves, 24) == moves


async def test_scrollback_shows_lines_that_scrolled_off() -> None:
    app = PaneApp(Recorder())
    async with app.run_test(size=(40, 10)) as pilot:
        pane = app.query_one(TerminalPane)
        pane.feed(b"".join(f"row {i}\r\n".encode() for i in range(50)))
        await pilot.pause()
        assert pane.render_line(0).text.strip() == "row 41"
        assert len(pane.screen_model.history) == 41
        await pilot.press("shift+pageup")  # the pane is focused, not taken over
        assert pane.scrollback == 9
        assert pane.render_line(0).text.strip() == "row 32"
        pane.scroll_history(10_000)  # clamped at the oldest line
        assert pane.render_line(0).text.strip() == "row 0"
        pane.takeover = True  # taking over shows the live screen again
        await pilot.pause()
        assert pane.scrollback == 0
        assert pane.render_line(0).text.strip() == "row 41"
