"""Tamper evidence for the files the shell's epilogue writes (the live-state snapshot).

The approval gate trusts a snapshot of the shell (`tmax_local.shell.state`) that bash
writes after every command into files of the shell's private directory.  bash can write
there, so anything the shell runs can too: a background job that edits the snapshot after
the epilogue wrote it, a ``DEBUG`` trap that runs before each command of the epilogue and
rewrites the trap list, a copy over the file, a hard link written through.  The token at
the end of a snapshot does not help against them: they read it from the file they edit.

So the snapshot files are watched, not trusted:

- ``arm()`` creates each file afresh before a command, as an unnamed file (``O_TMPFILE``)
  that gets its name only once an inotify watch is on its inode.  From then on every open
  and every close after writing is counted, through whatever path or link it was opened;
- bash's epilogue opens each file a fixed number of times (``writes``), always to write,
  and our own reads go through ``read()``, which counts itself;
- a file is intact when the name still leads to the watched inode, it was opened exactly
  as often as the epilogue and our reads account for, closed after writing exactly as often
  as the epilogue writes, and nothing changed its metadata (a chmod, a link, a rename) or
  overflowed the queue.  ``read()`` counts the events *after* reading, so a write that lands
  between the check and the read is seen too.

A write through a memory mapping needs an open for writing first: it is counted like any
other.  ``truncate(2)`` by name opens nothing and is not counted, but it can only cut the
file short, and a snapshot ends with its token: a cut one is never taken for complete.

Left open: a process that makes bash's own open of the file fail (a file-descriptor limit
lowered around the epilogue, say) and writes in its place, once, keeps the count right.

Where inotify is missing (not Linux) there is no guard: `available()` is False and the
shell trusts the token alone, as before.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from tmax_local import inotify

_MASK = (
    inotify.IN_OPEN
    | inotify.IN_CLOSE_WRITE
    | inotify.IN_ATTRIB
    | inotify.IN_DELETE_SELF
    | inotify.IN_MOVE_SELF
)


class Tampered(Exception):
    """A guarded file was opened, written or changed by something other than the epilogue."""


@dataclass
class _File:
    path: str
    writes: int
    """How often the epilogue opens the file (each time to write)."""
    wd: int = -1
    ino: tuple[int, int] = (0, 0)
    opens: int = 0
    closes_after_write: int = 0
    attrib: int = 0
    ours_opened: int = 0
    """Opens we made ourselves after the watch was set (our reads)."""
    ours_written: int = 0
    """Closes after writing that are ours (closing the file we created)."""
    gone: bool = False


def available() -> bool:
    return inotify.available() and hasattr(os, "O_TMPFILE")


class SnapshotFiles:
    """The guarded files of one shell (see the module docstring)."""

    def __init__(self, writes: dict[str, int]):
        self._inotify = inotify.Inotify()
        self._writes = dict(writes)
        self._files: dict[str, _File] = {}
        self._by_wd: dict[int, _File] = {}
        self._overflow = False

    def close(self) -> None:
        self._inotify.close()

    def arm(self) -> None:
        """Create every file afresh (empty, watched) before the epilogue writes it."""
        for f in self._files.values():
            self._inotify.rm_watch(f.wd)
        self._drain()  # the old files' last events and their watches' IN_IGNORED: dropped
        self._files.clear()
        self._by_wd.clear()
        self._overflow = False
        for path, writes in self._writes.items():
            self._files[path] = self._create(path, writes)

    def _create(self, path: str, writes: int) -> _File:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        directory = os.path.dirname(path)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
            try:
                proc_path = f"/proc/self/fd/{fd}"
                f = _File(path, writes)
                f.wd = self._inotify.add_watch(proc_path, _MASK)
                self._by_wd[f.wd] = f
                st = os.fstat(fd)
                f.ino = (st.st_dev, st.st_ino)
                # linkat(…, AT_SYMLINK_FOLLOW) names the open file (os.link only takes that
                # path when given a directory descriptor); the new link: one IN_ATTRIB
                os.link(
                    proc_path,
                    os.path.basename(path),
                    src_dir_fd=dir_fd,
                    dst_dir_fd=dir_fd,
                    follow_symlinks=True,
                )
                f.attrib -= 1
            finally:
                os.close(fd)  # opened for writing: one IN_CLOSE_WRITE, ours
        finally:
            os.close(dir_fd)
        f.ours_written += 1
        return f

    def watches(self, path: str) -> bool:
        return path in self._writes

    def read(self, path: str) -> bytes:
        """The file's bytes; raises `Tampered` (or OSError when it cannot be read)."""
        f = self._files.get(path)
        if f is None:
            raise Tampered(f"{os.path.basename(path)} was not prepared for this command")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            f.ours_opened += 1
            st = os.fstat(fd)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(fd)
        if (st.st_dev, st.st_ino) != f.ino:
            raise Tampered(f"{os.path.basename(path)} was replaced by another file")
        why = self._why(f)
        if why:
            raise Tampered(f"{os.path.basename(path)} {why}")
        return b"".join(chunks)

    def _why(self, f: _File) -> str | None:
        self._drain()
        if self._overflow:
            return "may have been changed (too many file events to follow)"
        if f.gone:
            return "was removed or renamed"
        if f.attrib:
            return "had its permissions, links or times changed"
        if f.opens != f.writes + f.ours_opened:
            extra = f.opens - f.writes - f.ours_opened
            return f"was opened {extra:+d} time(s) beyond what the shell's own epilogue does"
        if f.closes_after_write != f.writes + f.ours_written:
            return "was written by something other than the shell's own epilogue"
        return None

    def _drain(self) -> None:
        for wd, mask, _name in self._inotify.events():
            if mask & inotify.IN_Q_OVERFLOW:
                self._overflow = True
                continue
            f = self._by_wd.get(wd)
            if f is None:
                continue
            if mask & inotify.IN_OPEN:
                f.opens += 1
            if mask & inotify.IN_CLOSE_WRITE:
                f.closes_after_write += 1
            if mask & inotify.IN_ATTRIB:
                f.attrib += 1
            if mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_IGNORED):
                f.gone = True
