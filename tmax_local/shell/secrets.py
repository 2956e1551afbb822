"""Keep withheld secrets away from the agent's shell through *this* process too.

The shell starts without secret-looking variables (`env.shell_environment`), but it can
still look at its parent: ``/proc/<agent pid>/environ`` shows the environment block the
agent was started with (changing ``os.environ`` later does not change it), and
``/proc/<agent pid>/mem`` shows everything.  `protect_process` closes both:

1. it removes the variables from ``os.environ`` (and so from the C ``environ``);
2. it overwrites their entries in the process's initial environment block (the memory
   ``/proc/self/environ`` reads, located through ``/proc/self/stat``) with NUL bytes, in
   place, through ``/proc/self/mem``;
3. it marks the process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): ``/proc/<pid>/mem``,
   ``environ`` and ptrace are then closed to other processes of the same user.  (root keeps
   access to everything, which is why step 2 matters.)

Measured on Linux 6.x (tests/test_secrets.py): without this, ``tr '\\0' '\\n' <
/proc/$PPID/environ`` in the shell prints the secret; with it, nothing does.  The values
stay available to this process through `withheld_value` (for example a Hugging Face
token a download needs).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable
from dataclasses import dataclass

_PR_SET_DUMPABLE = 4
_kept: dict[str, str] = {}


@dataclass(frozen=True)
class Protection:
    """What `protect_process` managed to do (each step can fail on its own)."""

    removed: tuple[str, ...]
    blanked: tuple[str, ...]
    """Names whose entries in the initial environment block were overwritten."""
    non_dumpable: bool


def withheld_value(name: str) -> str | None:
    """The value of a variable `protect_process` removed (None if it was not set)."""
    return _kept.get(name)


def protect_process(names: Iterable[str]) -> Protection:
    """Remove ``names`` from this process's environment, blank them in its initial
    environment block and make the process non-dumpable.  Linux only; elsewhere it only
    edits ``os.environ``."""
    wanted = set(names)
    removed = []
    for name in sorted(wanted):
        value = os.environ.pop(name, None)
        if value is not None:
            _kept[name] = value
            removed.append(name)
    blanked = _blank_initial_environment(wanted)
    return Protection(tuple(removed), tuple(blanked), _set_non_dumpable())


def _blank_initial_environment(names: set[str]) -> list[str]:
    if not names:
        return []
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        fields = stat.rsplit(b")", 1)[1].split()
        # fields[0] is field 3 (state); env_start/env_end are fields 50 and 51
        start, end = int(fields[47]), int(fields[48])
    except (OSError, IndexError, ValueError):
        return []
    if not 0 < start < end:
        return []
    blanked: list[str] = []
    try:
        fd = os.open("/proc/self/mem", os.O_RDWR)
    except OSError:
        return []
    try:
        block = os.pread(fd, end - start, start)
        offset = 0
        for entry in block.split(b"\0"):
            name = entry.split(b"=", 1)[0].decode("utf-8", "surrogateescape")
            if b"=" in entry and name in names:
                os.pwrite(fd, b"\0" * len(entry), start + offset)
                blanked.append(name)
            offset += len(entry) + 1
    except OSError:
        pass
    finally:
        os.close(fd)
    return sorted(set(blanked))


def _set_non_dumpable() -> bool:
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        libc = ctypes.CDLL(path, use_errno=True)
        return libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
