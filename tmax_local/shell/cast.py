"""Record the raw terminal stream as an asciinema v2 cast file."""

from __future__ import annotations

import codecs
import json
import os
import time
from collections.abc import Callable
from typing import IO, Self

from tmax_local.shell.events import Output, ShellEvent


class AsciicastRecorder:
    """Write ``Output`` events to ``path`` in asciicast v2 format.

    Use it as a subscriber: ``unsubscribe = shell.subscribe(recorder)``.  The
    header is written on creation; each event is one JSON line
    ``[seconds since start, "o", text]`` (bytes decoded as UTF-8, with
    replacement characters for invalid input).  ``resize`` adds an ``"r"`` event.

    The recording is bounded: when the file reaches ``max_bytes`` it is rotated — renamed to
    ``NAME.1.cast`` (replacing an older one) and a fresh recording continues under the same
    name, starting with a line that says so — so a long session keeps at most about twice
    ``max_bytes`` on disk. ``on_rotate`` (optional) is called with a notice for the user.
    """

    DEFAULT_MAX_BYTES = 64 * 1024 * 1024

    def __init__(
        self,
        path: str | os.PathLike[str],
        cols: int,
        rows: int,
        *,
        title: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_rotate: Callable[[str], None] | None = None,
    ):
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.on_rotate = on_rotate
        self.rotations = 0
        self._cols, self._rows, self._title = cols, rows, title
        self._start = time.monotonic()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._file: IO[str] | None = None
        self._size = 0
        self._open()

    @property
    def previous_path(self) -> str:
        root, ext = os.path.splitext(self.path)
        return f"{root}.1{ext or '.cast'}"

    def _open(self) -> None:
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        self._size = 0
        header: dict[str, object] = {
            "version": 2,
            "width": self._cols,
            "height": self._rows,
            "timestamp": int(time.time()),
            "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"},
        }
        if self._title:
            header["title"] = self._title
        self._write(header)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        os.replace(self.path, self.previous_path)
        self.rotations += 1
        self._open()
        notice = (
            f"terminal recording reached {self.max_bytes // (1024 * 1024)} MB: earlier output "
            f"moved to {os.path.basename(self.previous_path)} (older parts are dropped)"
        )
        self._write([self._elapsed(), "o", f"\x1b[2m[tmax-local: {notice}]\x1b[0m\r\n"])
        if self.on_rotate is not None:
            self.on_rotate(notice)

    def _write(self, obj: object) -> None:
        if self._file is None:
            return
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        n = len(line.encode("utf-8"))
        if self._size and self._size + n > self.max_bytes and isinstance(obj, list):
            self._rotate()
        self._file.write(line)
        self._file.flush()
        self._size += n

    def _elapsed(self) -> float:
        return round(time.monotonic() - self._start, 6)

    def __call__(self, event: ShellEvent) -> None:
        if isinstance(event, Output):
            text = self._decoder.decode(event.data)
            if text:
                self._write([self._elapsed(), "o", text])

    def resize(self, cols: int, rows: int) -> None:
        self._write([self._elapsed(), "r", f"{cols}x{rows}"])

    def close(self) -> None:
        if self._file is not None:
            rest = self._decoder.decode(b"", final=True)
            if rest:
                self._write([self._elapsed(), "o", rest])
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
