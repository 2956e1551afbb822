"""Linux process inspection for the agent's shell (all via /proc and psutil)."""

from __future__ import annotations

import os
import platform
import signal

import psutil

# Syscall numbers of read(2) and select(2)/pselect6(2), per architecture.
_READ_SYSCALLS = {"x86_64": {0}, "aarch64": {63}}.get(platform.machine(), set())
_SELECT_SYSCALLS = {"x86_64": {23, 270}, "aarch64": {72}}.get(platform.machine(), set())
# Kernel wait channels of a task sleeping in a terminal read.
_TTY_WAIT_CHANNELS = {"wait_woken", "n_tty_read", "tty_read"}


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _is_tty_fd(pid: int, fd: int) -> bool:
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return False
    return target.startswith(("/dev/pts/", "/dev/tty"))


def blocked_on_tty_read(pid: int) -> bool:
    """Whether ``pid`` is asleep waiting to read from a terminal."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state != "S":
        return False
    syscall = _read(f"/proc/{pid}/syscall")
    if syscall:
        fields = syscall.split()
        if fields[0].isdigit() and len(fields) > 1:
            number = int(fields[0])
            arg0 = int(fields[1], 16)
            if number in _READ_SYSCALLS:
                return _is_tty_fd(pid, arg0)
            if number in _SELECT_SYSCALLS:
                # readline-style: select() on fd 0 only, and fd 0 is a terminal
                return arg0 == 1 and _is_tty_fd(pid, 0)
            return False
    wchan = _read(f"/proc/{pid}/wchan")
    return wchan is not None and wchan.strip() in _TTY_WAIT_CHANNELS


def group_members(pgid: int, root_pid: int) -> list[int]:
    """Pids in process group ``pgid`` among ``root_pid`` and its descendants."""
    pids = [root_pid]
    try:
        pids += [child.pid for child in psutil.Process(root_pid).children(recursive=True)]
    except psutil.Error:
        pass
    members = []
    for pid in pids:
        try:
            if os.getpgid(pid) == pgid:
                members.append(pid)
        except OSError:
            continue
    return members


def session_members(sid: int) -> list[int]:
    """All live processes of session ``sid`` (zombies excluded)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(proc.pid) == sid:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return members


def kill_session(sid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to every process of session ``sid``."""
    for pid in session_members(sid):
        try:
            os.kill(pid, sig)
        except OSError:
            continue


def cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def cwd_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
