"""The operating-system wall around the agent's shell (issue 10).

Modes (:class:`SandboxMode`):

- ``workspace``: the shell and everything it starts may write only inside the
  project directory, a private temporary directory (``$TMPDIR``), a private
  cache directory (``$XDG_CACHE_HOME``), ``/dev/null``-like devices and its
  own terminal; TCP ``connect``/``bind`` are refused unless network is allowed;
  everything is readable except credential locations (:data:`CREDENTIALS`).
- ``read-only``: the same, but the project is not writable either.
- ``off``: no confinement.

Linux uses Landlock (kernel >= 5.13; TCP rules need ABI >= 4, kernel 6.7).  The
rules are applied by the launcher :mod:`tmax_local.shell.sandbox_exec` to the
process that then execs bash, so bash, ``exec bash``, ``setsid``, ``nohup``
and background jobs all stay inside: a Landlock domain is inherited by every
descendant and can never be removed.  The shell's restart path uses the same
launcher.  Landlock also confines root and forbids ptrace of (and reading the
``mem`` or ``cwd`` of) processes outside the sandbox, and from ABI 6 sending
signals to them.  As root, the launcher also empties the capability bounding
set (Landlock does not cover kernel modules, raw or netlink sockets...).  One
thing root keeps: the agent's own ``/proc/PID/environ`` stays readable (a
normal user's is not); ``shell/secrets.py`` scrubs withheld secrets from it.

What Landlock is an allow-list of, and what follows from it:

- Reads are granted on each entry of ``/`` except ``/dev`` (only ``/dev/null``-like
  devices, ``/dev/urandom`` and the shell's own terminal: no raw disks, no other
  terminals, no kernel log); a directory holding a credential
  location (``/root`` or ``/home/me``, ``~/.config``) is not granted as a
  whole but entry by entry, leaving the credential entries out.  So files and
  directories created directly in such a directory *after* the shell started
  are not readable until the shell restarts; listing names is allowed
  everywhere (``ls ~/.ssh`` shows names, ``cat ~/.ssh/id_rsa`` is refused).
- A project directory that contains a credential location (the project is
  ``$HOME``) is granted entry by entry too, so new top-level files cannot be
  created there.
- Not covered by Landlock, on any kernel: UDP and other non-TCP sockets, and
  connecting to a *named* unix socket (a tmux server, the systemd user bus,
  ``docker.sock``: each can run commands outside the sandbox).  So with network
  blocked a seccomp filter also refuses creating unix sockets (``socketpair``
  and pipes still work) and ``io_uring``.  UDP stays open: DNS lookups and
  other datagrams are not blocked.
- The project is writable, so a command can leave files that run later
  outside the sandbox (git hooks, ``Makefile``, ``.envrc``): review them as
  you would any change in the project.

macOS: :func:`seatbelt_profile` builds a ``sandbox-exec`` profile with the
same rules (untested on a Mac; see the README).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import functools
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tmax_local.errors import ConfigError, TmaxError
from tmax_local.shell import sandbox_exec

# Landlock filesystem rights (bit values of the kernel ABI).
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
TRUNCATE = 1 << 14
IOCTL_DEV = 1 << 15
ALL_FS = (1 << 16) - 1
READ = EXECUTE | READ_FILE | IOCTL_DEV
DEVICE = READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV
NET_TCP = 0b11  # bind, connect
SCOPED = 0b11  # abstract unix sockets, signals

# Credential locations, relative to $HOME: never readable (nor writable) in the sandbox.
CREDENTIALS: tuple[str, ...] = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/op",
    ".docker",
    ".kube",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".my.cnf",
    ".vault-token",
    ".password-store",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".terraform.d/credentials.tfrc.json",
    ".local/share/keyrings",
    # browser profiles (cookies, saved passwords)
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".config/microsoft-edge",
    ".config/vivaldi",
    ".config/opera",
    "snap/firefox",
    "snap/chromium",
    "Library/Keychains",
    "Library/Cookies",
    "Library/Application Support/Google/Chrome",
    "Library/Application Support/Firefox",
    "Library/Application Support/BraveSoftware",
    "Library/Safari",
)
# Devices every program expects to open for writing.
DEVICES: tuple[str, ...] = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
# /dev is not readable as a whole: raw disks (root reads every file through them),
# other terminals (reading steals the user's keystrokes; TIOCSTI types into them),
# the kernel log.  Only these devices are readable, plus the shell's own terminal.
READABLE_DEVICES: tuple[str, ...] = ("/dev/random", "/dev/urandom")


class SandboxMode(enum.StrEnum):
    WORKSPACE = "workspace"
    READ_ONLY = "read-only"
    OFF = "off"


MODES: tuple[str, ...] = tuple(mode.value for mode in SandboxMode)


class SandboxUnavailable(TmaxError):
    title = "Sandbox unavailable"


@dataclass(frozen=True)
class SandboxSupport:
    """What this machine can confine."""

    mechanism: str  # "landlock", "seatbelt" or "none"
    abi: int = 0
    network: bool = False  # TCP connect/bind can be refused
    detail: str = ""

    @property
    def available(self) -> bool:
        return self.mechanism != "none"

    def describe(self) -> str:
        if self.mechanism == "landlock":
            net = "TCP filtering" if self.network else "no network filtering (needs ABI 4)"
            return f"Landlock ABI {self.abi} ({net})"
        if self.mechanism == "seatbelt":
            return "Seatbelt (sandbox-exec)"
        return f"unavailable: {self.detail}"


def detect() -> SandboxSupport:
    """Probe the running system once (cheap: one syscall on Linux)."""
    if sys.platform.startswith("linux"):
        abi = sandbox_exec.abi_version()
        if abi < 1:
            return SandboxSupport(
                "none", detail="this Linux kernel has no Landlock (needs 5.13+, enabled in LSM)"
            )
        return SandboxSupport("landlock", abi=abi, network=abi >= 4)
    if sys.platform == "darwin":
        if os.path.exists("/usr/bin/sandbox-exec"):
            return SandboxSupport("seatbelt", network=True)
        return SandboxSupport("none", detail="/usr/bin/sandbox-exec is missing")
    return SandboxSupport("none", detail=f"no sandbox for platform {sys.platform}")


def health() -> dict[str, bool | str | None]:
    """For ``tmax-local doctor``: ``{"ok": bool, "detail": str}``."""
    support = detect()
    detail = support.describe()
    if support.mechanism == "landlock":
        detail += "; not covered: UDP, named unix sockets"
    elif support.mechanism == "seatbelt":
        detail += " (untested on macOS by our CI)"
    return {"ok": support.available, "detail": detail}


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class SandboxPolicy:
    """What the shell may touch.  Paths are resolved (``realpath``) on creation."""

    mode: SandboxMode
    project: str
    tmpdir: str
    home: str
    allow_network: bool = False
    writable: tuple[str, ...] = ()
    """Extra directories writable in both confined modes (the private cache)."""
    writable_files: tuple[str, ...] = ()
    """Single files the shell itself must write (its control files)."""
    credentials: tuple[str, ...] = field(default=CREDENTIALS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SandboxMode(self.mode))
        for name in ("project", "tmpdir", "home"):
            object.__setattr__(self, name, _real(getattr(self, name)))
        object.__setattr__(self, "writable", tuple(_real(p) for p in self.writable))
        object.__setattr__(self, "writable_files", tuple(_real(p) for p in self.writable_files))

    @property
    def confined(self) -> bool:
        return self.mode is not SandboxMode.OFF

    def protected(self) -> list[str]:
        """Credential paths (resolved), whether they exist or not."""
        return sorted({_real(os.path.join(self.home, rel)) for rel in self.credentials})

    def writable_roots(self) -> list[str]:
        roots = [self.tmpdir, *self.writable]
        if self.mode is SandboxMode.WORKSPACE:
            roots.insert(0, self.project)
        return roots

    def describe(self) -> str:
        """One line for headers and status bars."""
        if not self.confined:
            return "sandbox off"
        if self.allow_network:
            net = "network allowed"
        elif detect().network:
            net = "no network"
        else:  # Landlock ABI < 4: TCP cannot be refused on this kernel
            net = "TCP NOT blocked (kernel too old), unix sockets blocked"
        if self.mode is SandboxMode.WORKSPACE:
            return f"sandbox workspace: writes only in {self.project}, {net}"
        return f"sandbox read-only: no writes outside $TMPDIR, {net}"

    # -- Landlock ---------------------------------------------------------------
    def landlock_rules(self) -> list[tuple[str, int]]:
        """``(path, rights)`` rules for the launcher (most general first)."""
        rules: list[tuple[str, int]] = [("/", READ_DIR)]
        protected = self.protected()
        rules += _grant_excluding("/", READ, [*protected, "/dev"])
        rules += [(dev, READ_FILE) for dev in READABLE_DEVICES]
        for root in self.writable_roots():
            rules += _grant_excluding(root, ALL_FS, protected)
        rules += [(dev, DEVICE) for dev in DEVICES]
        rules += [(path, READ_FILE | WRITE_FILE | TRUNCATE) for path in self.writable_files]
        return rules

    def landlock_json(self) -> str:
        if not self.confined:
            return "{}"
        policy = {
            "handled_fs": ALL_FS,
            "rules": self.landlock_rules(),
            "net": 0 if self.allow_network else NET_TCP,
            "scoped": SCOPED,
            "tty": DEVICE,
            # Landlock does not cover named unix sockets: with network blocked,
            # no unix sockets at all (socketpair and pipes still work).
            "no_unix_sockets": not self.allow_network,
        }
        return json.dumps(policy, separators=(",", ":"))

    # -- reading denials out of a command's output ---------------------------------
    @functools.cached_property
    def _read_roots(self) -> tuple[str, ...]:
        return tuple(path for path, rights in self.landlock_rules() if rights & READ_FILE)

    def protected_path(self, path: str) -> bool:
        real = _real(path)
        return any(_within(real, p) for p in self.protected())

    def readable(self, path: str) -> bool:
        """Whether the rules let the shell read ``path`` (its terminal aside)."""
        real = _real(path)
        if self.protected_path(real):
            return False
        return any(_within(real, root) for root in self._read_roots)

    def writable_path(self, path: str) -> bool:
        real = _real(path)
        if any(_within(real, p) for p in self.protected()):
            return False
        if real in self.writable_files or real in DEVICES:
            return True
        return any(_within(real, root) for root in self.writable_roots())


def _grant_excluding(root: str, rights: int, excluded: Sequence[str]) -> list[tuple[str, int]]:
    """Rules granting ``rights`` beneath ``root`` except beneath each ``excluded`` path.

    Landlock cannot subtract, so a directory that holds an excluded path is
    granted entry by entry instead of as a whole."""
    real = _real(root)
    inside = [path for path in excluded if _within(path, real)]
    if not inside:
        return [(real, rights)]
    if real in inside or not os.path.isdir(real):
        return []
    rules: list[tuple[str, int]] = []
    try:
        entries = sorted(os.scandir(real), key=lambda entry: entry.name)
    except OSError:
        return []
    for entry in entries:
        rules += _grant_excluding(entry.path, rights, inside)
    return rules


@dataclass(frozen=True)
class Launch:
    """How to start a program through the launcher: its argv, and the file
    descriptors the spawn must keep open for it."""

    argv: list[str]
    pass_fds: tuple[int, ...] = ()


@contextlib.contextmanager
def launch(policy: SandboxPolicy | None, argv: Sequence[str]) -> Iterator[Launch]:
    """The launcher command that starts ``argv`` with clean signals and the sandbox applied.

    The Landlock policy travels in an anonymous file whose descriptor the
    launcher inherits, never on the command line: a home or project inside a
    crowded directory is granted entry by entry, and those rules can exceed
    what one argument may hold (128 KiB on Linux).  The descriptor is closed
    here when the block ends; spawn the program inside it.
    """
    launcher = [sys.executable, "-I", "-S", sandbox_exec.__file__]
    if policy is None or not policy.confined:
        yield Launch([*launcher, "{}", "--", *argv])
        return
    if sys.platform == "darwin":
        profile = seatbelt_profile(policy)
        yield Launch([*launcher, "{}", "--", "/usr/bin/sandbox-exec", "-p", profile, *argv])
        return
    fd = _policy_file(policy.landlock_json().encode())
    try:
        os.set_inheritable(fd, True)
        yield Launch([*launcher, f"{sandbox_exec.FD_PREFIX}{fd}", "--", *argv], (fd,))
    finally:
        os.close(fd)


def _policy_file(data: bytes) -> int:
    """A read-only-to-everyone-else descriptor holding ``data``, positioned at its start."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("tmax-sandbox-policy", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    else:
        with tempfile.TemporaryFile() as tmp:  # unlinked at once: nothing else can open it
            fd = os.dup(tmp.fileno())
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        if hasattr(fcntl, "F_ADD_SEALS"):
            seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
            with contextlib.suppress(OSError):  # a temporary file cannot be sealed
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def require_support(policy: SandboxPolicy) -> SandboxSupport:
    """Raise :class:`SandboxUnavailable` if ``policy`` cannot be enforced here."""
    support = detect()
    if policy.confined and not support.available:
        raise SandboxUnavailable(
            f"cannot sandbox the shell: {support.detail}; choose --sandbox off to run without it"
        )
    return support


def choose_mode(
    requested: str | None, *, unattended: bool, support: SandboxSupport | None = None
) -> SandboxMode:
    """The sandbox mode a session runs with.

    ``requested`` is the user's choice (flag or config file), None when unset.
    Unset, the default is ``workspace`` when commands can run without a person
    approving each one (``unattended``: ``--approve auto``, or allow rules in
    force), else ``off``.  A confined mode this machine cannot enforce is an
    error that says how to go on without it: nothing falls back to ``off``
    silently.
    """
    if requested is None:
        if not unattended:
            return SandboxMode.OFF
        mode = SandboxMode.WORKSPACE
    else:
        try:
            mode = SandboxMode(requested)
        except ValueError:
            raise ConfigError(
                f"unknown sandbox mode {requested!r} (expected one of: {', '.join(MODES)})"
            ) from None
    if mode is SandboxMode.OFF:
        return mode
    support = support if support is not None else detect()
    if not support.available:
        why = (
            "commands run without approval, so the default is a sandbox, but "
            if (requested is None)
            else ""
        )
        raise SandboxUnavailable(
            f"{why}this machine cannot sandbox the shell ({support.detail}); "
            "pass --sandbox off to run without it"
        )
    return mode


# -- macOS ---------------------------------------------------------------------------
def _sb_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def seatbelt_profile(policy: SandboxPolicy) -> str:
    """A ``sandbox-exec`` (SBPL) profile with the policy's rules.

    Written with allow rules only, each carrying its exceptions as
    ``require-not`` filters, so nothing depends on the order rules are matched.
    """
    keep_out = " ".join(f"(require-not (subpath {_sb_string(p)}))" for p in policy.protected())
    devices = " ".join(f"(literal {_sb_string(d)})" for d in (*DEVICES, *READABLE_DEVICES))
    writable = [f"(subpath {_sb_string(root)})" for root in policy.writable_roots()]
    writable += [f"(literal {_sb_string(path)})" for path in (*policy.writable_files, *DEVICES)]
    no_dev = '(require-not (subpath "/dev"))'
    lines = [
        "(version 1)",
        "(deny default)",
        "(allow process-exec)",
        "(allow process-fork)",
        "(allow signal (target same-sandbox))",
        "(allow process-info* (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow mach-lookup)",
        "(allow ipc-posix-sem)",
        "(allow ipc-posix-shm*)",
        "(allow pseudo-tty)",
        "(allow user-preference-read)",
        f'(allow file-read* (require-all (subpath "/") {no_dev} {keep_out}))',
        f'(allow file-read* (literal "/dev") {devices})',
        f"(allow file-write* file-ioctl"
        f" (require-all (require-any {' '.join(writable)}) {keep_out}))",
    ]
    if policy.allow_network:
        lines.append("(allow network*)")
    return "\n".join(lines) + "\n"


# -- explaining denials to the model ---------------------------------------------------
_DENIED = re.compile(r"Permission denied|Operation not permitted|\[Errno 1[3]?\]")
_QUOTED = re.compile(r"'([^'\n]+)'|\"([^\"\n]+)\"|‘([^’\n]+)’")
_BARE = re.compile(r"(?:^|[\s:])((?:~|\.{1,2})?/[^\s:'\"]+)")
_NETWORK = re.compile(
    r"(?:^|\W)(?:connect|bind)(?:\(|:|\s|$)|/dev/(?:tcp|udp)/|\bsocket\.py\b|create_connection"
    r"|Failed to connect|port \d+: Permission denied"
)


def explain_denials(output: str, policy: SandboxPolicy, cwd: str) -> list[str]:
    """Notes ``[sandbox] ...`` for denials in ``output`` caused by ``policy``.

    Not a guess about unrelated errors: a line counts only when it reports
    EACCES/EPERM on a path that the policy forbids *and* that this (unconfined)
    process would be allowed to access, so ordinary permission errors are left
    alone; or, with network blocked, when it reports EACCES from ``connect`` or
    ``bind`` (bash's ``/dev/tcp``, a traceback through ``socket``).
    """
    if not policy.confined:
        return []
    notes: list[str] = []
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if not _DENIED.search(line):
            continue
        note = None
        context = "\n".join(lines[max(0, index - 4) : index + 1])
        if not policy.allow_network and _NETWORK.search(line if _paths_in(line, cwd) else context):
            note = (
                "[sandbox] network access denied (TCP connect/bind and unix sockets are"
                " blocked in this sandbox; the user can allow network access)"
            )
        else:
            for path in _paths_in(line, cwd):
                note = _path_note(path, policy)
                if note:
                    break
        if note and note not in notes:
            notes.append(note)
    return notes


def _paths_in(line: str, cwd: str) -> list[str]:
    found = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(line)]
    found += [m.group(1) for m in _BARE.finditer(line)]
    # `tee: out/x: Permission denied`, `bash: x: Permission denied`
    head = line.split(": ")
    found += [part for part in head[1:-1] if part and " " not in part]
    paths = []
    for text in found:
        path = os.path.normpath(os.path.join(cwd, os.path.expanduser(text)))
        if path not in paths:
            paths.append(path)
    return paths


def _unconfined_allows(path: str, write: bool) -> bool:
    """Whether this process (outside the sandbox) may do the access itself."""
    probe = path
    while write and not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent
    if not os.path.lexists(probe):
        return False
    return os.access(probe, os.W_OK if write else os.R_OK)


def _path_note(path: str, policy: SandboxPolicy) -> str | None:
    shown = _display(path, policy)
    if policy.protected_path(path):
        if _unconfined_allows(path, write=False) or not os.path.lexists(path):
            return (
                f"[sandbox] access to {shown} denied (credential location; the sandbox"
                " blocks reading and writing it)"
            )
        return None
    if os.path.lexists(path) and not policy.readable(path):  # (a missing one: a create)
        if not _unconfined_allows(path, write=False):
            return None
        return f"[sandbox] read of {shown} denied (not readable in the sandbox)"
    if policy.writable_path(path):
        return None
    if not _unconfined_allows(path, write=True):
        return None
    if policy.mode is SandboxMode.WORKSPACE:
        where = f"writes allowed only under {policy.project} and $TMPDIR"
    else:
        where = "read-only mode: writes allowed only under $TMPDIR"
    return f"[sandbox] write to {shown} denied ({policy.mode.value} mode: {where})"


def _display(path: str, policy: SandboxPolicy) -> str:
    home = policy.home.rstrip("/") + "/"
    return "~/" + path[len(home) :] if path.startswith(home) else path
