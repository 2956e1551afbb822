"""Which paths of a project may have changed since the last look: Linux inotify.

A full scan stats every path (10,000 files: ~80 ms of system calls on a small VM), which is
most of a checkpoint's cost when a command changed one file. With a watch on every scanned
directory, the kernel queues the name of each entry created, deleted, renamed, written or
chmod'ed, and a checkpoint only needs to stat those (``TreeWatcher.changes``).

inotify cannot see everything, so the answer is "these paths, or I cannot tell" (``None``),
and the caller then scans in full:

- the queue overflowed, the project root itself moved, or a directory was deleted or
  renamed (a subtree gone: a full scan is simpler and as cheap as tracking it);
- a file with more than one hard link can be written through a link outside the watched
  directories: the caller re-stats every such file at every checkpoint;
- the project spans a filesystem whose changes may not be reported (network and FUSE
  filesystems): ``usable`` is False there and no watcher is made;
- a write through a shared memory mapping after its file was closed sends no event; the
  caller bounds that by a full scan every ``FULL_SCAN_EVERY`` checkpoints.

The watches are held by one inotify descriptor, closed with ``close()`` (or when the
watcher is garbage-collected).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

from tmax_local.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_EXCL_UNLINK,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    Inotify,
    available,
)

WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)

# Filesystems whose changes are all made by this kernel, so inotify hears of every one.
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "overlay", "jfs", "bcachefs"}
)


def _unescape(field: str) -> str:
    """A /proc/self/mountinfo path field (octal escapes for space, tab, newline, \\)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystems_under(root: str) -> set[str] | None:
    """The filesystem types ``root`` and everything mounted beneath it live on (None if
    /proc/self/mountinfo cannot be read)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    root = os.path.realpath(root)
    best, best_type, inside = "", None, set()
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or not rfields:
            continue
        point, fstype = _unescape(fields[4]), rfields[0]
        if point == root or root.startswith(point.rstrip("/") + "/"):
            if len(point) >= len(best):
                best, best_type = point, fstype
        elif point.startswith(root.rstrip("/") + "/"):
            inside.add(fstype)
    if best_type is None:
        return None
    return {best_type, *inside}


def usable(root: str) -> bool:
    """Whether a watcher can be trusted for ``root`` (Linux, local filesystems only)."""
    if not available():
        return False
    types = filesystems_under(root)
    return types is not None and types <= LOCAL_FILESYSTEMS


class TreeWatcher:
    """inotify watches on a project's directories (``sync``), and what changed (``changes``)."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self._inotify = Inotify()
        self.fd = self._inotify.fd
        self.by_wd: dict[int, str] = {}  # watch descriptor -> directory (relative, "" = root)
        self.by_dir: dict[str, int] = {}
        self.broken = False  # a watch could not be added: changes() answers None

    def close(self) -> None:
        self._inotify.close()

    @property
    def closed(self) -> bool:
        return self._inotify.closed

    def add(self, rel: str) -> bool:
        """Watch directory ``rel``; False (and the watcher is broken) if the kernel refused."""
        if rel in self.by_dir:
            return True
        path = os.path.join(self.root, rel) if rel else self.root
        try:
            wd = self._inotify.add_watch(path, WATCH_MASK)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                return True  # gone already: its parent's event says so
            self.broken = True  # ENOSPC (the user's watch limit) and the like
            return False
        old = self.by_wd.get(wd)
        if old is not None:  # the same directory under another name (it moved)
            self.by_dir.pop(old, None)
        self.by_wd[wd] = rel
        self.by_dir[rel] = wd
        return True

    def sync(self, dirs: Iterable[str]) -> bool:
        """Watch exactly the root and ``dirs`` (after a full scan); False if broken."""
        wanted = {"", *dirs}
        for rel in [d for d in self.by_dir if d not in wanted]:
            wd = self.by_dir.pop(rel)
            self.by_wd.pop(wd, None)
            self._inotify.rm_watch(wd)
        self.broken = False
        return all(self.add(rel) for rel in wanted)

    def changes(self) -> tuple[set[str], set[str]] | None:
        """``(paths, new_dirs)`` that may have changed since the last call (relative paths;
        ``new_dirs``: directories created or moved in, whose contents are new too), or None
        when only a full scan can tell. Every queued event is consumed either way."""
        events = list(self._inotify.events())
        if self.broken or self.closed:
            return None
        paths: set[str] = set()
        new_dirs: set[str] = set()
        full = False
        for wd, mask, name in events:
            if mask & (IN_Q_OVERFLOW | IN_UNMOUNT):
                full = True
                continue
            rel_dir = self.by_wd.get(wd)
            if mask & IN_IGNORED:
                if rel_dir is not None:
                    self.by_wd.pop(wd, None)
                    self.by_dir.pop(rel_dir, None)
                continue
            if rel_dir is None:
                continue  # a watch removed by sync(): its directory is no longer covered
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                full = True  # a directory went away (its parent's event may be elsewhere)
                continue
            if not name:  # the directory itself (its mode, say)
                if rel_dir:
                    paths.add(rel_dir)
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel_dir and mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO):
                paths.add(rel_dir)  # an entry came or went: the directory's times moved
            if mask & IN_ISDIR:
                if mask & (IN_DELETE | IN_MOVED_FROM):
                    full = True
                    continue
                if mask & (IN_CREATE | IN_MOVED_TO):
                    new_dirs.add(rel)
            paths.add(rel)
        return None if full else (paths, new_dirs)
