"""The model's view of terminal output, built while it streams.

:class:`TextCollector` turns raw PTY bytes into plain text: invalid UTF-8 is
replaced, ANSI control sequences (CSI, OSC, DCS and friends) are removed,
carriage returns overwrite the current line like a terminal does (so a progress
bar collapses to its last state), ``\\r\\n`` becomes ``\\n``, and memory stays
bounded: the first ``head_chars`` and the last ``tail_chars`` characters are
kept and whatever falls between is only counted.
"""

from __future__ import annotations

import codecs
import re

DEFAULT_HEAD_CHARS = 64 * 1024
DEFAULT_TAIL_CHARS = 64 * 1024

# One token of terminal output that is not plain text.  Order matters: complete
# escape sequences first, then single control characters.
_CONTROL = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]                  # CSI ... final byte
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)        # OSC ... BEL or ST
    | \x1b[PX^_][^\x1b]*\x1b\\                 # DCS / SOS / PM / APC ... ST
    | \x1b[ -/]*[0-OQ-WYZ\\`a-~]               # other ESC sequences (charset, keypad)
    | [\x00-\x1a\x1c-\x1f\x7f\x80-\x9f]        # lone C0 / C1 controls (not ESC)
    """,
    re.VERBOSE,
)
# An escape sequence cut off at the end of a chunk (kept for the next chunk).
_INCOMPLETE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[ -/]*)?\Z"
)
_CSI_ERASE_LINE = re.compile(r"\x1b\[([0-2]?)K")
# Text that needs no terminal emulation at all (the common case, e.g. `yes`).
_NEEDS_WORK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")

_MAX_PENDING_ESCAPE = 4096  # an "escape sequence" longer than this is garbage
_MAX_LINE = 16 * 1024  # flush a line without newline once it gets this long


class TextCollector:
    """Accumulates the text view of one command's output with bounded memory."""

    def __init__(
        self, head_chars: int = DEFAULT_HEAD_CHARS, tail_chars: int = DEFAULT_TAIL_CHARS
    ) -> None:
        self.head_chars = head_chars
        self.tail_chars = tail_chars
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""  # an unfinished escape sequence from the last chunk
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.dropped_chars = 0
        self._line = ""  # the line being written (not yet ended by \n)
        self._col = 0  # cursor position within _line

    # -- feeding ---------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._feed_text(self._decoder.decode(data))

    def _feed_text(self, text: str) -> None:
        if self._pending:
            text = self._pending + text
            self._pending = ""
        if not text:
            return
        if "\x1b" not in text:
            text = text.replace("\r\n", "\n")
            if not _NEEDS_WORK.search(text) and "\r" not in text:
                self._put_plain(text)
                return
        pos = 0
        for match in _CONTROL.finditer(text):
            if match.start() > pos:
                self._put_plain(text[pos : match.start()].replace("\x1b", ""))
            self._control(match.group())
            pos = match.end()
        rest = text[pos:]
        if not rest:
            return
        cut = rest.find("\x1b", max(0, len(rest) - _MAX_PENDING_ESCAPE))
        while cut >= 0:
            if _INCOMPLETE.match(rest, cut):
                self._pending = rest[cut:]
                rest = rest[:cut]
                break
            cut = rest.find("\x1b", cut + 1)
        if rest:
            # An ESC that never formed a sequence is dropped; its text is kept.
            rest = rest.replace("\x1b", "")
        if rest:
            self._put_plain(rest)

    def _control(self, token: str) -> None:
        if token == "\n":
            self._newline()
        elif token == "\r":
            self._col = 0
        elif token == "\t":
            self._put_plain("\t")
        elif token == "\b":
            self._col = max(0, self._col - 1)
        elif token.startswith("\x1b["):
            m = _CSI_ERASE_LINE.fullmatch(token)
            if m:
                if m.group(1) in ("", "0"):
                    self._line = self._line[: self._col]
                elif m.group(1) == "2":
                    self._line = ""
                    self._col = 0
                else:  # 1: erase to the left of the cursor
                    self._line = " " * self._col + self._line[self._col :]
        # Everything else (colours, cursor keys, titles, bells) carries no text.

    def _put_plain(self, text: str) -> None:
        """Write text that holds no control characters other than ``\n`` and ``\t``."""
        last = text.rfind("\n")
        if last < 0:
            self._write(text)
            return
        first = text.find("\n")
        if first:
            self._write(text[:first])
        self._newline()
        if last > first:  # whole lines in between: no cursor games possible
            self._store(text[first + 1 : last + 1])
        if last + 1 < len(text):
            self._write(text[last + 1 :])

    def _write(self, piece: str) -> None:
        line, col = self._line, self._col
        if col == len(line):
            line += piece
        else:
            line = line[:col] + piece + line[col + len(piece) :]
        col += len(piece)
        if len(line) > _MAX_LINE and col == len(line):
            self._store(line)
            line, col = "", 0
        self._line, self._col = line, col

    def _newline(self) -> None:
        self._store(self._line + "\n")
        self._line = ""
        self._col = 0

    def _store(self, text: str) -> None:
        room = self.head_chars - self._head_len
        if room > 0:
            part = text[:room]
            self._head.append(part)
            self._head_len += len(part)
            text = text[room:]
            if not text:
                return
        self._tail.append(text)
        self._tail_len += len(text)
        if self._tail_len > 2 * self.tail_chars:
            joined = "".join(self._tail)
            excess = len(joined) - self.tail_chars
            self.dropped_chars += excess
            self._tail = [joined[excess:]]
            self._tail_len = self.tail_chars

    def finish(self) -> None:
        """End of output: flush the decoder; an unfinished escape sequence is dropped."""
        self._feed_text(self._decoder.decode(b"", final=True))
        self._pending = ""

    # -- reading ---------------------------------------------------------------
    def text(self) -> str:
        """The text so far (head, a one-line note if the middle was dropped, tail)."""
        tail = "".join(self._tail) + self._line
        dropped = self.dropped_chars
        if len(tail) > self.tail_chars:
            dropped += len(tail) - self.tail_chars
            tail = tail[-self.tail_chars :]
        head = "".join(self._head)
        if not dropped:
            return head + tail
        return f"{head}\n[... {dropped} characters dropped ...]\n{tail}"

    def total_dropped(self) -> int:
        tail_len = self._tail_len + len(self._line)
        return self.dropped_chars + max(0, tail_len - self.tail_chars)


def clean_text(data: bytes) -> str:
    """The model text view of ``data`` in one go (no cap in practice)."""
    collector = TextCollector(head_chars=len(data) + 1, tail_chars=len(data) + 1)
    collector.feed(data)
    collector.finish()
    return collector.text()
