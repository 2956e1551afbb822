"""Helpers for the undo tests: the exact state of a directory tree, and a copy of it."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


def tree_state(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Every path under ``root`` -> (kind, permission bits, bytes or link target), not
    following symlinks."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel.split("/")[0] in skip:
                continue
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode)
            elif not stat.S_ISREG(st.st_mode):
                out[rel] = ("special", stat.S_IFMT(st.st_mode), mode)
            else:
                with open(path, "rb") as fh:
                    out[rel] = ("file", mode, fh.read())
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return out


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def differences(a: dict[str, tuple], b: dict[str, tuple]) -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append(f"{k}: {str(a.get(k))[:80]} != {str(b.get(k))[:80]}")
    return out
