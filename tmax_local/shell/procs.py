"""Process inspection for the agent's shell.

Two ways, chosen at run time: ``/proc`` (Linux: exact, via the syscall a task
sleeps in) and a portable one for systems without ``/proc`` (macOS) built on
psutil and ``ps`` (a task asleep in a terminal-read wait channel).  Setting
``TMAX_PROCS=portable`` forces the portable way (the tests use it on Linux).
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess

import psutil

# Wait channels `ps -o wchan` shows for a task asleep reading a terminal:
# Linux (n_tty_read, wait_woken), macOS/BSD (ttyin, ttread).
_PS_TTY_WAIT_CHANNELS = ("n_tty_read", "wait_woken", "tty_read", "ttyin", "ttread")
# Waiting in select/poll (readline, an interactive shell): counted when the
# process has a controlling terminal.  Less exact than /proc, which checks
# that fd 0 is the only descriptor waited on.
_PS_SELECT_WAIT_CHANNELS = ("poll_schedule_timeout", "do_select", "core_sys_select", "select")


def use_proc() -> bool:
    """Whether to read /proc (else psutil and ps)."""
    if os.environ.get("TMAX_PROCS") == "portable":
        return False
    return os.path.exists("/proc/self/stat")


def backend() -> str:
    return "proc" if use_proc() else "portable"

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
    if not use_proc():
        return _ps_blocked_on_tty_read(pid)
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


def _ps_blocked_on_tty_read(pid: int) -> bool:
    ps = shutil.which("ps")
    if ps is None:
        return False
    try:
        out = subprocess.run(
            [ps, "-o", "stat=,wchan=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return False
    if len(out) < 2 or not out[0].startswith("S"):
        return False
    if out[1].startswith(_PS_TTY_WAIT_CHANNELS):
        return True
    if out[1].startswith(_PS_SELECT_WAIT_CHANNELS):
        try:
            return psutil.Process(pid).terminal() is not None
        except psutil.Error:
            return False
    return False


def cmdline(pid: int) -> bytes | None:
    """The process's argv as /proc shows it (NUL-terminated arguments)."""
    if not use_proc():
        try:
            args = psutil.Process(pid).cmdline()
        except psutil.Error:
            return None
        return b"".join(os.fsencode(arg) + b"\0" for arg in args)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def cwd_of(pid: int) -> str | None:
    if not use_proc():
        try:
            return psutil.Process(pid).cwd() or None
        except psutil.Error:
            return None
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
