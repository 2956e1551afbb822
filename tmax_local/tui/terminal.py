"""The terminal pane: a pyte emulator drawn as a Textual line-API widget.

Bytes from the PTY arrive on the shell's reader thread. `TerminalPane.feed_threadsafe`
appends them to a buffer and posts at most one `TerminalPane.Pending` message until the
UI has drained it, so a flood of output collapses into a few repaints instead of one
message per read. The UI thread feeds the bytes to a `pyte.ByteStream` and repaints only
the lines pyte marks dirty.

In *take-over* mode keys typed in the pane go to the PTY (Ctrl-C interrupts the running
command); Ctrl-] hands control back to the app.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pyte
from pyte.screens import StaticDefaultDict
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

# Alternate-screen private modes (xterm): 47, 1047, 1049 (1049 also saves the cursor).
_ALT_MODES = frozenset({47, 1047, 1049})
_DECCOLM = 3  # 132-column mode: ignored, the pane decides the width.
_DECCKM = 1  # application cursor keys

_PYTE_COLOURS = {
    "black": "black",
    "red": "red",
    "green": "green",
    "brown": "yellow",
    "yellow": "yellow",
    "blue": "blue",
    "magenta": "magenta",
    "cyan": "cyan",
    "white": "white",
    "brightblack": "bright_black",
    "brightred": "bright_red",
    "brightgreen": "bright_green",
    "brightbrown": "bright_yellow",
    "brightyellow": "bright_yellow",
    "brightblue": "bright_blue",
    "brightmagenta": "bright_magenta",
    "brightcyan": "bright_cyan",
    "brightwhite": "bright_white",
}


def _colour(name: str) -> str | None:
    if name == "default":
        return None
    mapped = _PYTE_COLOURS.get(name)
    if mapped is not None:
        return mapped
    if len(name) == 6:
        try:
            int(name, 16)
        except ValueError:
            return None
        return "#" + name
    return None


class EmulatorScreen(pyte.Screen):
    """A pyte screen that also knows the alternate screen buffer (full-screen programs)."""

    def __init__(self, columns: int, lines: int, history: int = 2000) -> None:
        super().__init__(columns, lines)
        self.history: deque[StaticDefaultDict] = deque(maxlen=history)
        """Lines scrolled off the top of the main screen (oldest first)."""
        self.in_alt_screen = False
        self._saved_main: dict[int, StaticDefaultDict] | None = None
        self._saved_cursor: pyte.screens.Cursor | None = None

    def set_mode(self, *modes: int, **kwargs: object) -> None:
        if kwargs.get("private"):
            alt = [m for m in modes if m in _ALT_MODES]
            modes = tuple(m for m in modes if m not in _ALT_MODES and m != _DECCOLM)
            if alt and not self.in_alt_screen:
                self._enter_alt(save_cursor=1049 in alt)
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: object) -> None:
        if kwargs.get("private"):
            alt = [m for m in modes if m in _ALT_MODES]
            modes = tuple(m for m in modes if m not in _ALT_MODES and m != _DECCOLM)
            if alt and self.in_alt_screen:
                self._leave_alt()
        super().reset_mode(*modes, **kwargs)

    def _enter_alt(self, *, save_cursor: bool) -> None:
        saved: dict[int, StaticDefaultDict] = {}
        for y, line in self.buffer.items():
            copy: StaticDefaultDict = StaticDefaultDict(self.default_char)
            copy.update(line)
            saved[y] = copy
        self._saved_main = saved
        self._saved_cursor = (
            pyte.screens.Cursor(self.cursor.x, self.cursor.y, self.cursor.attrs)
            if save_cursor
            else None
        )
        self.in_alt_screen = True
        self.erase_in_display(2)

    def _leave_alt(self) -> None:
        self.in_alt_screen = False
        self.buffer.clear()
        for y, line in (self._saved_main or {}).items():
            if y < self.lines:
                self.buffer[y] = line
        if self._saved_cursor is not None:
            self.cursor.x = min(self._saved_cursor.x, self.columns - 1)
            self.cursor.y = min(self._saved_cursor.y, self.lines - 1)
            self.cursor.attrs = self._saved_cursor.attrs
        self._saved_main = None
        self._saved_cursor = None
        self.dirty.update(range(self.lines))

    def index(self) -> None:
        """Line feed at the bottom scrolls: keep the line leaving the top as history."""
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and not self.in_alt_screen:
            line: StaticDefaultDict = StaticDefaultDict(self.default_char)
            line.update(self.buffer[0])
            self.history.append(line)
        super().index()

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """Shrink like xterm: drop blank rows below the cursor first, then from the top."""
        lines = lines or self.lines
        if lines < self.lines:
            drop_bottom = min(self.lines - lines, self.lines - 1 - self.cursor.y)
            for y in range(self.lines - drop_bottom, self.lines):
                self.buffer.pop(y, None)
            shift = self.lines - drop_bottom - lines
            if shift > 0:
                kept = {y - shift: line for y, line in self.buffer.items() if y >= shift}
                self.buffer.clear()
                self.buffer.update(kept)
                self.cursor.y = max(self.cursor.y - shift, 0)
            self.lines = lines
            self.cursor.y = min(self.cursor.y, lines - 1)
        super().resize(lines, columns)
        self.set_margins()
        self.dirty.update(range(self.lines))

    @property
    def app_cursor_keys(self) -> bool:
        return (_DECCKM << 5) in self.mode

    def text_lines(self) -> list[str]:
        """The screen as plain text, one string per row (trailing spaces kept)."""
        return list(self.display)


# When output floods in faster than the emulator can parse it (pyte is pure Python),
# lines that would scroll past unseen are not parsed: only the last KEEP_BYTES are, cut at
# a line break, and only when nothing in the skipped part could change more than the
# scrolled-away lines (alternate screen, cursor addressing, erase/scroll-region controls).
FLOOD_BYTES = 64 * 1024
KEEP_BYTES = 16 * 1024


def skip_scrolled_away(data: bytes, rows: int) -> bytes:
    """The part of a large burst that can still be visible once it has all been shown."""
    if len(data) <= FLOOD_BYTES:
        return data
    cut = data.rfind(b"\n", 0, len(data) - KEEP_BYTES)
    if cut <= 0:
        return data
    kept = data[cut + 1 :]
    if kept.count(b"\n") < rows + 1:
        return data
    skipped = data[: cut + 1]
    if b"\x1b" in skipped and _touches_screen(skipped):
        return data
    return b"\r\n" + kept


def _touches_screen(chunk: bytes) -> bool:
    """Whether an escape sequence in ``chunk`` does more than colour text (SGR)."""
    for seq in chunk.split(b"\x1b")[1:]:
        if not seq:
            continue
        if seq[:1] != b"[":
            return True  # ESC c (reset), ESC 7/8 (save/restore cursor), charsets, OSC...
        body = seq[1:]
        end = next((i for i, b in enumerate(body) if 0x40 <= b <= 0x7E), None)
        if end is None or body[end : end + 1] != b"m":
            return True
    return False


class TerminalBackend(Protocol):
    """What the pane drives: the persistent shell (`tmax_local.shell.PtyShell`)."""

    def send_input(self, data: bytes) -> None: ...

    def interrupt(self) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...


# Keys that are not a printable character, as the bytes a terminal sends.
_KEY_BYTES: dict[str, bytes] = {
    "enter": b"\r",
    "tab": b"\t",
    "shift+tab": b"\x1b[Z",
    "backspace": b"\x7f",
    "escape": b"\x1b",
    "delete": b"\x1b[3~",
    "insert": b"\x1b[2~",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "f1": b"\x1bOP",
    "f2": b"\x1bOQ",
    "f3": b"\x1bOR",
    "f4": b"\x1bOS",
}
_ARROWS = {"up": "A", "down": "B", "right": "C", "left": "D"}


def key_to_bytes(key: str, character: str | None, *, app_cursor: bool = False) -> bytes | None:
    """The bytes a terminal would send for a Textual key event, or None if it has none."""
    if key in _ARROWS:
        return ("\x1bO" if app_cursor else "\x1b[").encode() + _ARROWS[key].encode()
    if key in _KEY_BYTES:
        return _KEY_BYTES[key]
    if key.startswith("ctrl+") and len(key) == 6 and key[5].isalpha():
        return bytes([ord(key[5].lower()) - ord("a") + 1])
    if key == "ctrl+space" or key == "ctrl+@":
        return b"\x00"
    if character and character.isprintable():
        return character.encode("utf-8")
    if character and len(character) == 1 and ord(character) < 32:
        return character.encode()
    return None


class TerminalPane(Widget, can_focus=True):
    """Renders the PTY through pyte; in take-over mode forwards keys to the PTY."""

    DEFAULT_CSS = """
    TerminalPane {
        height: 1fr;
        width: 1fr;
        background: $surface;
        color: $foreground;
    }
    TerminalPane.-takeover {
        border-left: thick $warning;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+right_square_bracket", "release", "Hand back", show=True, priority=True),
        Binding("shift+pageup", "page_back", "Scroll back", show=False),
        Binding("shift+pagedown", "page_forward", "Scroll forward", show=False),
    ]

    takeover: reactive[bool] = reactive(False)
    scrollback: reactive[int] = reactive(0)
    """How many lines the view is scrolled back into history (0: the live screen)."""

    @dataclass
    class Pending(Message):
        """Bytes are waiting in the pane's buffer (posted from the reader thread)."""

    @dataclass
    class TakeoverChanged(Message):
        takeover: bool

    @dataclass
    class AltScreen(Message):
        active: bool

    def __init__(
        self,
        backend: TerminalBackend | None = None,
        *,
        rows: int = 24,
        cols: int = 80,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.backend = backend
        self.screen_model = EmulatorScreen(cols, rows)
        self._stream = pyte.ByteStream(self.screen_model)
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._posted = False
        self._strips: list[Strip | None] = [None] * rows
        self.bytes_fed = 0
        self.flushes = 0
        self._was_alt = False

    # -- input from the PTY (any thread) ------------------------------------------------
    def feed_threadsafe(self, data: bytes) -> None:
        """Queue PTY bytes from any thread; the UI thread renders them soon after."""
        with self._lock:
            self._buffer += data
            if self._posted:
                return
            self._posted = True
        self.post_message(self.Pending())

    def on_terminal_pane_pending(self, message: Pending) -> None:
        message.stop()
        self.flush()

    def flush(self) -> None:
        """Feed everything buffered so far to the emulator and repaint (UI thread)."""
        with self._lock:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._posted = False
        if not data:
            return
        self.feed(skip_scrolled_away(data, self.screen_model.lines))

    def feed(self, data: bytes) -> None:
        """Feed bytes to the emulator directly (UI thread)."""
        self.bytes_fed += len(data)
        self.flushes += 1
        self._stream.feed(data)
        screen = self.screen_model
        for y in screen.dirty:
            if 0 <= y < len(self._strips):
                self._strips[y] = None
        screen.dirty.clear()
        if screen.in_alt_screen != self._was_alt:
            self._was_alt = screen.in_alt_screen
            self._strips = [None] * screen.lines
            self.post_message(self.AltScreen(screen.in_alt_screen))
        self.refresh()

    def reset_screen(self) -> None:
        """Clear the emulator (a fresh shell)."""
        self.screen_model.reset()
        self._strips = [None] * self.screen_model.lines
        self.refresh()

    # -- geometry ----------------------------------------------------------------------
    def on_resize(self, event: events.Resize) -> None:
        self.resize_terminal(event.size)

    def resize_terminal(self, size: Size) -> None:
        rows, cols = max(size.height, 2), max(size.width, 10)
        screen = self.screen_model
        if (rows, cols) != (screen.lines, screen.columns):
            screen.resize(rows, cols)
            self._strips = [None] * rows
            self.refresh()
        if self.backend is not None:
            self.backend.resize(rows, cols)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return container.height

    # -- drawing -----------------------------------------------------------------------
    def _line_strip(self, y: int) -> Strip:
        return self._strip_of(self.screen_model.buffer[y])

    def _strip_of(self, line: StaticDefaultDict) -> Strip:
        screen = self.screen_model
        segments: list[Segment] = []
        run: list[str] = []
        run_key: tuple | None = None
        for x in range(screen.columns):
            char = line[x]
            if char.data == "":
                continue  # right half of a wide character
            key = (
                char.fg,
                char.bg,
                char.bold,
                char.italics,
                char.underscore,
                char.strikethrough,
                char.reverse,
            )
            if key != run_key and run:
                segments.append(Segment("".join(run), _style_for(run_key)))
                run = []
            run_key = key
            run.append(char.data)
        if run:
            segments.append(Segment("".join(run), _style_for(run_key)))
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        screen = self.screen_model
        width = self.size.width
        base = self.rich_style
        if y >= screen.lines or y >= len(self._strips):
            return Strip.blank(width, base)
        if self.scrollback and not screen.in_alt_screen:
            back = len(screen.history) - self.scrollback + y
            if back < len(screen.history):
                strip = self._strip_of(screen.history[back])
                strip = Strip([Segment(s.text, base + s.style if s.style else base) for s in strip])
                return strip.adjust_cell_length(width, base)
            y = back - len(screen.history)
        cached = self._strips[y]
        if cached is None:
            cached = self._line_strip(y)
            self._strips[y] = cached
        strip = cached
        cursor = screen.cursor
        if y == cursor.y and not cursor.hidden and (self.takeover or self.has_focus):
            strip = _with_cursor(strip, cursor.x)
        strip = Strip([Segment(s.text, base + s.style if s.style else base) for s in strip])
        return strip.adjust_cell_length(width, base)

    # -- scrollback --------------------------------------------------------------------
    def scroll_history(self, lines: int) -> None:
        """Scroll the view back (positive) or forward (negative) through history."""
        limit = 0 if self.screen_model.in_alt_screen else len(self.screen_model.history)
        self.scrollback = max(0, min(limit, self.scrollback + lines))

    def watch_scrollback(self) -> None:
        self.refresh()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_history(3)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_history(-3)

    def action_page_back(self) -> None:
        self.scroll_history(max(1, self.screen_model.lines - 1))

    def action_page_forward(self) -> None:
        self.scroll_history(-max(1, self.screen_model.lines - 1))

    # -- take-over ---------------------------------------------------------------------
    def watch_takeover(self, value: bool) -> None:
        self.set_class(value, "-takeover")
        if value:
            self.scrollback = 0
            self.focus()
        self.post_message(self.TakeoverChanged(value))
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_release(self) -> None:
        if self.takeover:
            self.takeover = False

    async def on_key(self, event: events.Key) -> None:
        if not self.takeover:
            return
        if event.key == "ctrl+right_square_bracket":
            return  # handled by the binding
        event.stop()
        event.prevent_default()
        if self.backend is None:
            return
        if event.key == "ctrl+c":
            self.backend.interrupt()
            return
        data = key_to_bytes(
            event.key, event.character, app_cursor=self.screen_model.app_cursor_keys
        )
        if data:
            self.backend.send_input(data)

    async def on_paste(self, event: events.Paste) -> None:
        if self.takeover and self.backend is not None:
            event.stop()
            self.backend.send_input(event.text.encode("utf-8"))

    # -- queries (tests, export) -------------------------------------------------------
    def text(self) -> str:
        """The visible screen as text with trailing blanks stripped."""
        return "\n".join(line.rstrip() for line in self.screen_model.display).rstrip("\n")


_STYLE_CACHE: dict[tuple, Style] = {}


def _style_for(key: tuple | None) -> Style:
    if key is None:
        return Style()
    style = _STYLE_CACHE.get(key)
    if style is None:
        fg, bg, bold, italics, underscore, strike, reverse = key
        style = Style(
            color=_colour(fg),
            bgcolor=_colour(bg),
            bold=bold or None,
            italic=italics or None,
            underline=underscore or None,
            strike=strike or None,
            reverse=reverse or None,
        )
        _STYLE_CACHE[key] = style
    return style


def _with_cursor(strip: Strip, x: int) -> Strip:
    if x >= strip.cell_length:
        strip = strip.extend_cell_length(x + 1)
    length = strip.cell_length
    before, cell, after = strip.crop(0, x), strip.crop(x, x + 1), strip.crop(x + 1, length)
    segs = [Segment(s.text, (s.style or Style()) + Style(reverse=True)) for s in cell]
    return Strip([*before, *segs, *after])
