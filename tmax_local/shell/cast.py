"""Record the raw terminal stream as an asciinema v2 cast file."""

from __future__ import annotations

import codecs
import json
import os
import time
from typing import IO, Self

from tmax_local.shell.events import Output, ShellEvent


class AsciicastRecorder:
    """Write ``Output`` events to ``path`` in asciicast v2 format.

    Use it as a subscriber: ``unsubscribe = shell.subscribe(recorder)``.  The
    header is written on creation; each event is one JSON line
    ``[seconds since start, "o", text]`` (bytes decoded as UTF-8, with
    replacement characters for invalid input).  ``resize`` adds an ``"r"`` event.
    """

    def __init__(
        self, path: str | os.PathLike[str], cols: int, rows: int, *, title: str | None = None
    ):
        self.path = os.fspath(path)
        self._start = time.monotonic()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        header: dict[str, object] = {
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": int(time.time()),
            "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"},
        }
        if title:
            header["title"] = title
        self._write(header)

    def _write(self, obj: object) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._file.flush()

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
