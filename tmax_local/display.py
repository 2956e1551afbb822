"""What the user sees is what the model wrote: text made safe for a terminal or a widget.

Everything the model wrote that reaches a screen — reasoning printed by ``tmax-local run``,
text in the TUI, the command in an approval prompt — goes through `visible` first. It
keeps the text readable and makes every character that could change how the rest is
shown visible instead of letting it act:

- control characters (C0 except newline and tab, DEL, C1): ESC becomes ``␛``, the others
  their Unicode "control picture" (``␍``, ``␇``…) or ``<U+009B>``. A clear-screen, an
  OSC 52 clipboard write, a conceal (SGR 8) or cursor movement is then plain text;
- bidirectional overrides, embeddings, isolates and marks (``U+202E``…), which can make a
  command read differently from what runs: ``<U+202E>``;
- invisible and zero-width characters (format characters such as ``U+200B``, ``U+2060``,
  ``U+FEFF``, tag characters; line/paragraph separators; Hangul fillers): ``<U+200B>``.

`visible` works character by character, so streamed text can be passed piece by piece.
`SafeText` wraps a text stream so everything written to it goes through `visible`.
"""

from __future__ import annotations

import io
import unicodedata
from functools import lru_cache
from typing import TextIO

_KEEP = frozenset("\n\t")
_ALWAYS_SHOWN = frozenset(
    {
        0x115F, 0x1160, 0x3164, 0xFFA0,  # Hangul fillers: blank glyphs
        0x2028, 0x2029,  # line / paragraph separators
        0x180E,  # Mongolian vowel separator
        0x034F,  # combining grapheme joiner
    }
)  # fmt: skip


@lru_cache(maxsize=4096)
def _shown(ch: str) -> str:
    code = ord(ch)
    if ch in _KEEP:
        return ch
    if code == 0x1B:
        return "␛"
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "␡"
    if 0x80 <= code < 0xA0 or code in _ALWAYS_SHOWN:
        return f"<U+{code:04X}>"
    cat = unicodedata.category(ch)
    if cat in ("Cf", "Cs", "Co", "Cn") and code >= 0xA0:
        if cat == "Co" or (cat == "Cn" and code < 0xE0000):
            return ch  # private-use and unassigned code points have visible (tofu) glyphs
        return f"<U+{code:04X}>"
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
        return ch  # variation selectors shape the character before them (emoji)
    return ch


def visible(text: str) -> str:
    """``text`` with control, bidi and invisible characters shown instead of acting."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_shown(ch) for ch in text)


def is_visible(text: str) -> bool:
    """True when `visible` would leave ``text`` unchanged."""
    return visible(text) == text


class SafeText(io.TextIOBase):
    """A text stream wrapper: ``write`` passes everything through `visible`."""

    def __init__(self, out: TextIO):
        super().__init__()
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(visible(text))
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def writable(self) -> bool:
        return True
