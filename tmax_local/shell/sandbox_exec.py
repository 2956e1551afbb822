"""Launcher for the agent's shell: clean signal state, optional Landlock, then exec.

Run as ``python -I -S sandbox_exec.py POLICY -- PROGRAM ARGS...``, where POLICY
is the policy's JSON text or ``fd:N``, an inherited descriptor to read it from
(then closed, so PROGRAM never sees it).  It uses
the standard library only (it is started by path, without ``site``, so it
costs one small interpreter start per shell start, nothing per command).

1. Every signal gets its default disposition and the signal mask is emptied:
   whatever started tmax-local (Python ignores SIGPIPE; a background job
   ignores SIGINT/SIGQUIT) must not leak into the shell, where bash could not
   undo it (signals ignored on entry cannot be trapped or reset).
2. If the policy has Landlock rules, they are applied to this process (after
   dropping every capability from the bounding set when running as root)
   (``PR_SET_NO_NEW_PRIVS`` + ``landlock_restrict_self``); the restriction is
   inherited by the program exec'd below and by everything it ever starts.
3. ``execvp(PROGRAM)``.

If the sandbox was asked for and cannot be applied, the program is NOT run:
the launcher prints one line on stderr and exits with status 126.

POLICY_JSON (built by :mod:`tmax_local.shell.sandbox`)::

    {"handled_fs": <mask>, "rules": [[path, mask], ...], "net": <mask>,
     "net_ports": [[port, mask], ...], "scoped": <mask>, "tty": <mask>,
     "no_unix_sockets": <bool>}

(``tty``: the rights granted on the terminal that is stdin; ``no_unix_sockets``:
a seccomp filter refuses ``socket(AF_UNIX, ...)`` and ``io_uring_setup``)

or ``{}`` for no sandbox.  Masks use the kernel's ABI-7 bit values; bits the
running kernel does not know are dropped (the parent decides, from the same
ABI, whether that is acceptable).  Missing paths are skipped.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import stat
import sys

# Syscall numbers are the same on every Linux architecture (new-style table).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2
PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights known to each ABI version (cumulative).
FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
# Rights that make sense on a file (not a directory) in a path-beneath rule:
# EXECUTE, WRITE_FILE, READ_FILE, TRUNCATE, IOCTL_DEV.
FILE_RIGHTS = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15)
NET_RIGHTS = 0b11  # BIND_TCP, CONNECT_TCP (ABI 4)
SCOPE_RIGHTS = 0b11  # abstract unix sockets, signals (ABI 6)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class SandboxFailed(Exception):
    pass


# -- seccomp: no unix-domain sockets (Landlock does not cover connecting to a named
# socket, e.g. a tmux server, the systemd user bus or docker.sock, which would run
# commands outside the sandbox), no io_uring (it can open sockets past seccomp).
class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


# machine -> (AUDIT_ARCH, socket, io_uring_setup)
_SECCOMP_ARCH = {
    "x86_64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
}
_LD_ABS_W, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
AF_UNIX, EACCES, EPERM, ENOSYS = 1, 13, 1, 38


def unix_socket_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """The BPF program, as (code, jt, jf, k) instructions."""
    arch, sys_socket, sys_io_uring_setup = _SECCOMP_ARCH[machine]
    return [
        (_LD_ABS_W, 0, 0, 4),  # 0: arch
        (_JEQ, 1, 0, arch),  # 1: native? -> 3
        (_RET, 0, 0, _ERRNO | EPERM),  # 2: foreign-ABI syscalls refused
        (_LD_ABS_W, 0, 0, 0),  # 3: syscall number
        (_JGE, 0, 1, 0x40000000),  # 4: x32 numbers -> 5, else 6
        (_RET, 0, 0, _ERRNO | EPERM),  # 5
        (_JEQ, 0, 3, sys_socket),  # 6: socket() -> 7, else 10
        (_LD_ABS_W, 0, 0, 16),  # 7: args[0] (domain), low word
        (_JEQ, 0, 3, AF_UNIX),  # 8: AF_UNIX -> 9, else 12
        (_RET, 0, 0, _ERRNO | EACCES),  # 9
        (_JEQ, 0, 1, sys_io_uring_setup),  # 10: io_uring_setup -> 11, else 12
        (_RET, 0, 0, _ERRNO | ENOSYS),  # 11
        (_RET, 0, 0, _ALLOW),  # 12
    ]


def apply_seccomp(libc: ctypes.CDLL) -> None:
    machine = os.uname().machine
    if machine not in _SECCOMP_ARCH:
        raise SandboxFailed(f"no seccomp filter for {machine}")
    program = unix_socket_filter(machine)
    array = (_SockFilter * len(program))(*(_SockFilter(*insn) for insn in program))
    fprog = _SockFprog(len(program), array)
    _check(
        libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
        "prctl(PR_SET_SECCOMP)",
    )


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The Landlock ABI of the running kernel; 0 when Landlock is unavailable."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = _libc()
    except OSError:
        return 0
    version = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(0, int(version))


def fs_rights(abi: int) -> int:
    known = [mask for version, mask in FS_RIGHTS_BY_ABI.items() if version <= abi]
    return max(known, default=0)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise SandboxFailed(f"{what}: {os.strerror(err)}")
    return result


PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4


def drop_capabilities(libc: ctypes.CDLL) -> None:
    """As root: empty the capability bounding set, so bash (exec'd as uid 0) and all it
    starts hold no capability at all.  Landlock does not stop what capabilities allow
    besides file access (loading kernel modules, raw/netlink sockets, reboot...)."""
    if os.geteuid() != 0:
        return
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
    except (OSError, ValueError):
        last = 63
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(last + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 and ctypes.get_errno() != errno.EINVAL:
            raise SandboxFailed(f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(ctypes.get_errno())}")


def apply_landlock(policy: dict) -> None:
    """Restrict this process (and its future children) as ``policy`` says."""
    abi = abi_version()
    if abi < 1:
        raise SandboxFailed("Landlock is not available in this kernel")
    libc = _libc()
    drop_capabilities(libc)
    handled_fs = int(policy.get("handled_fs", 0)) & fs_rights(abi)
    handled_net = int(policy.get("net", 0)) & NET_RIGHTS if abi >= 4 else 0
    scoped = int(policy.get("scoped", 0)) & SCOPE_RIGHTS if abi >= 6 else 0
    attr = _RulesetAttr(handled_fs, handled_net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _check(
        libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "landlock_create_ruleset",
    )
    rules = list(policy.get("rules", []))
    if policy.get("tty"):
        # The terminal this shell runs on, known only once the PTY exists.
        try:
            rules.append((os.ttyname(0), policy["tty"]))
        except OSError:
            pass
    try:
        for path, mask in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a path that does not exist grants nothing
            try:
                allowed = int(mask) & handled_fs
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    allowed &= FILE_RIGHTS
                if not allowed:
                    continue
                rule = _PathBeneathAttr(allowed, fd)
                _check(
                    libc.syscall(
                        SYS_LANDLOCK_ADD_RULE,
                        ruleset,
                        LANDLOCK_RULE_PATH_BENEATH,
                        ctypes.byref(rule),
                        0,
                    ),
                    f"landlock_add_rule({path})",
                )
            finally:
                os.close(fd)
        if handled_net:
            for port, mask in policy.get("net_ports", []):
                net_rule = _NetPortAttr(int(mask) & handled_net, int(port))
                _check(
                    libc.syscall(
                        SYS_LANDLOCK_ADD_RULE,
                        ruleset,
                        LANDLOCK_RULE_NET_PORT,
                        ctypes.byref(net_rule),
                        0,
                    ),
                    f"landlock_add_rule(port {port})",
                )
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
        if policy.get("no_unix_sockets"):
            apply_seccomp(libc)
    finally:
        os.close(ruleset)


def reset_signals() -> None:
    """Default disposition for every signal, nothing blocked."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            continue  # signals the C library reserves for itself
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


FD_PREFIX = "fd:"


def read_policy(arg: str) -> dict:
    """The policy from its JSON text, or from ``fd:N`` (read to its end, then closed)."""
    if arg.startswith(FD_PREFIX):
        with os.fdopen(int(arg[len(FD_PREFIX) :]), "rb") as source:
            arg = source.read().decode("utf-8")
    policy = json.loads(arg)
    if not isinstance(policy, dict):
        raise ValueError("the policy is not a JSON object")
    return policy


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: sandbox_exec.py POLICY_JSON|fd:N -- PROGRAM [ARGS...]\n")
        return 2
    try:
        policy = read_policy(argv[0])
    except (ValueError, OSError) as err:
        sys.stderr.write(f"tmax-local sandbox: cannot read the policy ({err})\n")
        return 126
    program = argv[2:]
    try:
        if policy:
            apply_landlock(policy)
    except SandboxFailed as err:
        sys.stderr.write(f"tmax-local sandbox: could not confine the shell ({err})\n")
        return 126
    reset_signals()
    try:
        os.execvp(program[0], program)
    except OSError as err:
        os.write(2, f"tmax-local sandbox: cannot run {program[0]}: {err.strerror}\n".encode())
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
