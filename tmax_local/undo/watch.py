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

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
import weakref
from collections.abc import Iterable

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_DONT_FOLLOW = 0x2000000
IN_EXCL_UNLINK = 0x4000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

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
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len

# Filesystems whose changes are all made by this kernel, so inotify hears of every one.
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "overlay", "jfs", "bcachefs"}
)


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.rm_watch = libc.inotify_rm_watch
        self.rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


_libc: _Libc | None = None


def _lib() -> _Libc | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            _libc = _Libc()
        except (OSError, AttributeError):
            return None
    return _libc


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
    if _lib() is None:
        return False
    types = filesystems_under(root)
    return types is not None and types <= LOCAL_FILESYSTEMS


class TreeWatcher:
    """inotify watches on a project's directories (``sync``), and what changed (``changes``)."""

    def __init__(self, root: str):
        lib = _lib()
        if lib is None:
            raise OSError(errno.ENOSYS, "inotify is not available")
        self.root = os.path.realpath(root)
        self._lib = lib
        fd = lib.init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd
        self._closer = weakref.finalize(self, os.close, fd)
        self.by_wd: dict[int, str] = {}  # watch descriptor -> directory (relative, "" = root)
        self.by_dir: dict[str, int] = {}
        self.broken = False  # a watch could not be added: changes() answers None

    def close(self) -> None:
        self._closer()

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def add(self, rel: str) -> bool:
        """Watch directory ``rel``; False (and the watcher is broken) if the kernel refused."""
        if rel in self.by_dir:
            return True
        path = os.path.join(self.root, rel) if rel else self.root
        wd = self._lib.add_watch(self.fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
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
            self._lib.rm_watch(self.fd, wd)  # EINVAL when the kernel dropped it: fine
        self.broken = False
        return all(self.add(rel) for rel in wanted)

    def _read(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def changes(self) -> tuple[set[str], set[str]] | None:
        """``(paths, new_dirs)`` that may have changed since the last call (relative paths;
        ``new_dirs``: directories created or moved in, whose contents are new too), or None
        when only a full scan can tell. Every queued event is consumed either way."""
        data = self._read()
        if self.broken or self.closed:
            return None
        paths: set[str] = set()
        new_dirs: set[str] = set()
        full = False
        pos = 0
        while pos + _HEADER.size <= len(data):
            wd, mask, _cookie, length = _HEADER.unpack_from(data, pos)
            name = os.fsdecode(data[pos + _HEADER.size : pos + _HEADER.size + length].rstrip(b"\0"))
            pos += _HEADER.size + length
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
