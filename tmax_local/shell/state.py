"""What the live shell would do with a command name, read from the shell itself.

A persistent shell has state: an earlier command can define a function ``ls``, put a
project directory first on ``PATH``, set ``GIT_PAGER``, disable a builtin or load a new
one, set a ``DEBUG`` trap, turn aliases back on.  The text of a later command cannot show
any of that, so the approval gate checks it against a *snapshot* of the shell.

How the snapshot is taken
-------------------------
After every command the agent runs, the shell's epilogue (``__tmax_done``, see
`pty_shell`) calls ``__tmax_snap FILE TOKEN``, which writes the state with bash builtins
only (no process is started) into a private file:

- it first truncates the file, so nothing half-written is ever trusted;
- it enters POSIX mode by assignment (``POSIXLY_CORRECT=y``: no command is looked up), where
  the special builtin ``unset`` is found before any function, and removes functions named
  like the builtins it uses (`RESERVED_FUNCTIONS`): a function ``builtin`` or ``declare``
  cannot fake the snapshot.  If one of them is a read-only function it gives up;
- it points ``PATH`` at nothing while it works, so a disabled builtin never becomes a
  program found on ``PATH``; restoring ``PATH`` also flushes bash's hash table, so a
  ``hash -p`` entry never outlives the command that made it;
- it unsets the variables it assigns (`FRESH_VARIABLES`) and refuses when any of its own
  variables keeps an attribute (an integer one would make an assignment run code);
- it ends the file with the token the agent typed on the command line.  A file without
  the expected token is stale.  A token is no proof of origin (anything the shell runs can
  read it), so on Linux the files are also watched (`tmax_local.shell.guard`): one opened or
  written by anything but the epilogue is not believed.

The file is NUL-separated (bash strings cannot hold NUL): a header, then tagged records.
`parse_snapshot` reads it; `ShellState` answers questions about it. Nothing here runs
anything; `ShellState.resolve` reads file metadata only.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

HEADER = "tmax-state-1"

RESERVED_FUNCTIONS = (
    "builtin",
    "command",
    "declare",
    "typeset",
    "enable",
    "printf",
    "alias",
    "trap",
    "set",
    "unset",
    "shopt",
    "local",
    "exec",
    "eval",
    "source",
    ".",
    ":",
)
"""Functions with these names are removed after every command: the snapshot relies on the
builtins behind them (documented in the README's approval section)."""

SENSITIVE_EXACT = (
    # bash itself
    "BASH_ENV", "ENV", "CDPATH", "GLOBIGNORE", "IFS", "EXECIGNORE", "HOME", "PS0", "PS1",
    "PS2", "PS4", "PROMPT_COMMAND", "BASH_XTRACEFD", "BASH_COMPAT",
    "BASH_LOADABLES_PATH", "POSIXLY_CORRECT", "SHELL", "TMOUT",
    # programs other programs start
    "PAGER", "MANPAGER", "SYSTEMD_PAGER", "EDITOR", "VISUAL", "FCEDIT", "BROWSER",
    "SUDO_ASKPASS", "SSH_ASKPASS", "SYSTEMD_EDITOR",
    # options and start-up code read from the environment
    "TAR_OPTIONS", "GZIP", "XZ_OPT", "XZ_DEFAULTS", "BZIP2", "BZIP", "ZSTD_CLEVEL",
    "GREP_OPTIONS", "MAKEFLAGS", "GNUMAKEFLAGS", "MFLAGS", "MAKEFILES", "CURL_HOME",
    "WGETRC", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "GCONV_PATH", "GLIBC_TUNABLES",
    "HOSTALIASES", "LOCPATH", "NLSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS", "CLASSPATH", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT",
    "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "TERMINFO", "TERMINFO_DIRS", "INPUTRC",
    "MAIL", "MAILPATH", "MAILCHECK",
)  # fmt: skip
"""Variables that change what a program runs or reads, whatever the program."""

SENSITIVE_PREFIXES = ("GIT_", "LD_", "DYLD_", "PYTHON", "LESS", "MAN", "npm_config_", "PIP_")
"""Every variable whose name starts with one of these is sensitive too."""

FRESH_VARIABLES = tuple(
    f"__tmax_{v}" for v in ("k", "wp", "ps", "pv", "ok", "fl", "hk", "hv", "s", "f")
)
"""Variables ``__tmax_snap`` and ``__tmax_done`` assign afresh: unset (``unset -n``: a
nameref itself, not its target) before the snapshot is taken, attributes and all."""
OWN_VARIABLES = (
    *FRESH_VARIABLES,
    *(f"__tmax_{v}" for v in ("pcs", "pcv", "o0", "b0", "st", "n", "up", "snapfail")),
)
"""Every variable the epilogue, ``__tmax_done``, ``__tmax_pre`` and ``__tmax_snap`` assign."""

# Shell options that make bash run or look up code differently.  Others (errexit,
# nullglob, pipefail…) change behaviour the static analysis already assumes nothing about.
RISKY_OPTIONS = {
    "keyword": "`set -k`: assignments anywhere in a command go to its environment",
    "functrace": "`set -T`: DEBUG and RETURN traps run inside functions",
    "errtrace": "`set -E`: the ERR trap runs inside functions",
    "extdebug": "`shopt -s extdebug` changes how traps and functions run",
    "expand_aliases": "aliases were turned back on (`shopt -s expand_aliases`)",
}

POSIX_SHOPTS = (
    "expand_aliases",
    "inherit_errexit",
    "shift_verbose",
    "sourcepath",
    "interactive_comments",
)
"""``shopt`` options bash changes on entering POSIX mode without updating ``$BASHOPTS``."""

BASH_DEFAULT_PATH = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin:."
"""What bash searches when ``PATH`` is unset (note the ``.`` at the end)."""

Kind = Literal["function", "alias", "builtin", "file", "missing"]


def sensitive_variable(name: str) -> bool:
    return name in SENSITIVE_EXACT or name.startswith(SENSITIVE_PREFIXES)


def snapshot_function() -> str:
    """The bash source of ``__tmax_snap FILE TOKEN`` (see the module docstring).

    The caller has already saved ``$SHELLOPTS`` and ``POSIXLY_CORRECT`` (``__tmax_o0``,
    ``__tmax_pcs``, ``__tmax_pcv``), entered POSIX mode by assignment and listed the traps
    at the top level (`epilogue`): inside a function bash hides the DEBUG, RETURN and ERR
    traps.  This function leaves POSIX mode as it found it."""
    names = " ".join(SENSITIVE_EXACT)
    prefixed = " ".join(f'"${{!{p}@}}"' for p in SENSITIVE_PREFIXES)
    reserved = " ".join(RESERVED_FUNCTIONS)
    # Variables the epilogue assigns: those assigned in here are unset first; any attribute
    # left (read-only, or on one assigned at the top level) is refused: an integer attribute
    # makes an assignment evaluate its text, and bash runs a $(…) found there.  PATH and
    # POSIXLY_CORRECT may only be exported.
    own = "".join(f"${{{v}+${{{v}@a}}}}" for v in OWN_VARIABLES)  # arrays: `a`, nothing else
    shared = "".join(f"${{{v}+${{{v}@a}}}}" for v in ("PATH", "POSIXLY_CORRECT"))
    return f"""
__tmax_snap() {{
    >|"$1" || return 1
    case :$SHELLOPTS: in *:posix:*) ;; *) >|"$1"; return 1 ;; esac
    unset -n {" ".join(FRESH_VARIABLES)} 2>/dev/null
    case {own} in *[!a]*) >|"$1"; return 1 ;; esac
    case {shared} in *[!x]*) >|"$1"; return 1 ;; esac
    __tmax_wp= __tmax_fl=$- __tmax_ps=${{PATH+1}} __tmax_pv=${{PATH-}}
    case :$__tmax_o0: in *:posix:*) __tmax_wp=1 ;; esac
    # the hash table, kept for the record: setting PATH below flushes it
    __tmax_hk=("${{!BASH_CMDS[@]}}") __tmax_hv=("${{BASH_CMDS[@]}}")
    PATH=/nonexistent/tmax-snapshot
    unset -f {reserved} 2>/dev/null
    __tmax_ok=$?
    if [[ -z $__tmax_wp ]]; then
        if [[ -n $__tmax_pcs ]]; then POSIXLY_CORRECT=$__tmax_pcv; set +o posix
        else unset POSIXLY_CORRECT; fi
        # entering POSIX mode turned these on; put back what the shell had
        for __tmax_k in {" ".join(POSIX_SHOPTS)}; do
            case :$__tmax_b0: in
            *:$__tmax_k:*) builtin shopt -s "$__tmax_k" ;;
            *) builtin shopt -u "$__tmax_k" ;;
            esac
        done
    fi
    if [[ $__tmax_ok == 0 ]]; then
        builtin set +u
        {{
            builtin printf '{HEADER}\\0O\\0%s\\0%s\\0S\\0' "$__tmax_fl" "$SHELLOPTS"
            builtin shopt -s
            builtin printf '\\0P\\0%s\\0%s\\0F\\0' "$__tmax_ps" "$__tmax_pv"
            builtin declare -F
            builtin printf '\\0B\\0'
            builtin enable -a
            builtin printf '\\0A\\0'
            builtin alias -p
            builtin printf '\\0'
            for __tmax_k in {names} {prefixed}; do
                [[ -z ${{!__tmax_k+1}} ]] ||
                    builtin printf 'V\\0%s\\0%s\\0%s\\0' \\
                        "$__tmax_k" "${{!__tmax_k@a}}" "${{!__tmax_k}}"
            done
            for __tmax_k in "${{!__tmax_hk[@]}}"; do
                builtin printf 'H\\0%s\\0%s\\0' \\
                    "${{__tmax_hk[__tmax_k]}}" "${{__tmax_hv[__tmax_k]}}"
            done
            builtin printf 'END\\0%s\\0' "$2"
        }} >|"$1" 2>/dev/null
        case $__tmax_fl in *u*) builtin set -u ;; esac
    else
        >|"$1"
    fi
    if [[ -n $__tmax_ps ]]; then PATH=$__tmax_pv; else builtin unset PATH; fi
}}
"""


SNAPSHOT_OPENS = 2
"""How often ``__tmax_snap`` opens its file, each time to write, whatever happens after the
first open (a refused snapshot is written empty): `tmax_local.shell.guard` counts on it."""
TRAPS_OPENS = 1
"""How often the epilogue opens the traps file (``trap -p >|FILE``)."""


def epilogue(state_file: str, traps_file: str, token: str) -> str:
    """The bash text typed after each command (``{ …; }`` with the exit status in ``$?``):
    save the POSIX-mode state, enter POSIX mode by assignment (so ``trap`` is the special
    builtin, whatever functions exist), list the traps at the top level, then call
    ``__tmax_done STATUS TOKEN``, which takes the snapshot.  Paths come quoted."""
    return (
        "__tmax_st=$? __tmax_o0=$SHELLOPTS __tmax_b0=$BASHOPTS __tmax_pcs=${POSIXLY_CORRECT+1}"
        " __tmax_pcv=${POSIXLY_CORRECT-}; POSIXLY_CORRECT=y;"
        f' \\trap -p >|{traps_file}; \\__tmax_done "$__tmax_st" {token}'
    )


# --------------------------------------------------------------------------- parsing


class SnapshotError(ValueError):
    """The snapshot file is missing, cut short, or not what the epilogue writes."""


@dataclass(frozen=True)
class Variable:
    value: str
    attrs: str
    """bash's attribute letters (``x`` exported, ``r`` read-only, ``n`` nameref…)."""


@dataclass(frozen=True)
class ShellState:
    """One snapshot of the live shell (see the module docstring)."""

    flags: str
    """``$-``"""
    options: frozenset[str]
    """Every ``set -o`` and ``shopt`` option that is on."""
    path: str | None
    """``$PATH`` (None when unset)."""
    functions: Mapping[str, bool] = field(default_factory=dict)
    """Function name → exported (``declare -fx``)."""
    builtins: frozenset[str] = frozenset()
    """Enabled builtins."""
    disabled: frozenset[str] = frozenset()
    """Builtins turned off with ``enable -n``."""
    aliases: tuple[str, ...] = ()
    """Alias names (as far as ``alias -p`` shows them)."""
    traps: str = ""
    """``trap -p`` as printed."""
    variables: Mapping[str, Variable] = field(default_factory=dict)
    """The sensitive variables that are set (see `sensitive_variable`)."""
    token: str = ""
    hashed: Mapping[str, str] = field(default_factory=dict)
    """bash's hash table as the last command left it (name → path); flushed since."""
    fds: Mapping[int, str] = field(default_factory=dict)
    """bash's open file descriptors above 2 (read from /proc by the caller)."""
    files: Mapping[str, str | None] = field(default_factory=dict)
    """Fingerprints of config files outside the shell that rule-covered programs read
    (git's global and system config), None when absent (filled in by the caller)."""

    @property
    def aliases_on(self) -> bool:
        return "expand_aliases" in self.options

    # ---------------------------------------------------------------- comparison
    def changes_since(self, base: ShellState) -> list[str]:
        """Why this shell can no longer be trusted to run a command as its text reads,
        compared with ``base`` (the snapshot taken when the shell started).  Empty when
        nothing that matters changed."""
        out: list[str] = []
        for opt, why in RISKY_OPTIONS.items():
            if opt in self.options and opt not in base.options:
                out.append(why)
        new_aliases = [a for a in self.aliases if a not in base.aliases]
        if new_aliases:
            names = ", ".join(new_aliases[:5])
            state = "on" if self.aliases_on else "off for now"
            out.append(f"alias(es) defined by an earlier command ({names}; aliases are {state})")
        if self.traps != base.traps:
            out.append("a trap was set or changed (`trap`): it runs code around commands")
        exported = sorted(n for n, x in self.functions.items() if x and n not in base.functions)
        if exported:
            out.append(
                f"exported function(s) {', '.join(exported[:5])} reach every bash script "
                "the command may start"
            )
        if "command_not_found_handle" in self.functions:
            out.append("a command_not_found_handle function runs for unknown commands")
        for name in sorted(set(self.variables) | set(base.variables)):
            now, then = self.variables.get(name), base.variables.get(name)
            if now == then:
                continue
            if now is None:
                was = then.value if then is not None else ""
                out.append(f"${name} was unset by an earlier command (it was {was!r})")
            elif then is None:
                out.append(f"${name} was set by an earlier command (to {now.value!r})")
            elif now.value != then.value:
                out.append(f"${name} was changed by an earlier command (to {now.value!r})")
            else:
                out.append(f"${name}'s attributes changed (from -{then.attrs} to -{now.attrs})")
        off = sorted(self.disabled - base.disabled)
        if off:
            out.append(f"builtin(s) disabled by `enable -n`: {', '.join(off[:5])}")
        for fd, target in sorted(self.fds.items()):
            if base.fds.get(fd) != target:
                out.append(
                    f"file descriptor {fd} is open on {target} (opened by an earlier command): "
                    f"a command can read or write it with >&{fd} or <&{fd}"
                )
        for path, digest in sorted(self.files.items()):
            if base.files.get(path, digest) != digest:
                out.append(f"{path} changed during this session (git reads it)")
        new = sorted(self.builtins - base.builtins)
        if new:
            out.append(f"builtin(s) loaded by `enable -f`: {', '.join(new[:5])}")
        return out

    # ---------------------------------------------------------------- resolution
    def resolve(self, name: str, cwd: str | os.PathLike[str], *, direct: bool = True) -> Resolution:
        """What bash (``direct``) or a program running a program by name (``direct=False``:
        ``timeout``, ``xargs``, ``find -exec``… which search ``PATH`` only) would run for
        ``name``, judged in this snapshot.  Aliases are a whole-shell matter
        (`changes_since`)."""
        if name in self.functions:
            exported = " (exported)" if self.functions[name] else ""
            return Resolution(name, "function", None, f"is a shell function{exported}")
        if direct and name in self.builtins:
            return Resolution(name, "builtin", None, "is a shell builtin")
        if "/" in name:
            return Resolution(name, "file", Path(cwd, name), "is a path")
        found = search_path(name, self.path, cwd)
        if found is None:
            return Resolution(name, "missing", None, "was not found on PATH")
        return Resolution(name, "file", found[0], f"is {found[0]}", found[1])


@dataclass(frozen=True)
class Resolution:
    name: str
    kind: Kind
    path: Path | None
    detail: str
    searched: tuple[str, ...] = ()
    """The PATH entries looked at before (and including) the one it was found in."""


def search_path(
    name: str, path: str | None, cwd: str | os.PathLike[str]
) -> tuple[Path, tuple[str, ...]] | None:
    """The file bash's PATH search finds for ``name`` (first executable regular file),
    with the entries searched up to it; None when there is none."""
    entries = (path if path is not None else BASH_DEFAULT_PATH).split(":")
    seen: list[str] = []
    for entry in entries:
        seen.append(entry)
        candidate = Path(cwd, entry or ".", name)
        try:
            st = candidate.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate, tuple(seen)
    return None


_DECLARE_F = re.compile(r"^declare -f(\S*) (\S+)$")
_ENABLE = re.compile(r"^enable( -n)? (\S+)$")
_ALIAS = re.compile(r"^alias (?:-- )?([^=\s]+)=", re.MULTILINE)


_HARMLESS_FD_TARGETS = re.compile(r"^/dev/(?:null|tty|pts/\d+)$")


def open_fds(pid: int) -> dict[int, str]:
    """The file descriptors above 2 that process ``pid`` has open, and their targets.

    The terminal and /dev/null are left out: reading or writing them reaches nothing
    (and bash opens /dev/null briefly for its own ``2>/dev/null`` at each prompt)."""
    out: dict[int, str] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        if name.isdigit() and int(name) > 2:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if not _HARMLESS_FD_TARGETS.match(target):
                out[int(name)] = target
    return out


def git_config_files(env: Mapping[str, str]) -> list[str]:
    """git's global and system config files for a shell with environment ``env``."""
    home = env.get("HOME") or os.path.expanduser("~")
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [os.path.join(home, ".gitconfig"), os.path.join(xdg, "git", "config"), "/etc/gitconfig"]


def fingerprints(paths: list[str]) -> dict[str, str | None]:
    """A content digest per file (None when it does not exist or cannot be read)."""
    out: dict[str, str | None] = {}
    for path in paths:
        try:
            with open(path, "rb") as fh:
                out[path] = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            out[path] = None
    return out


def parse_snapshot(data: bytes, *, token: str | None = None, traps: str = "") -> ShellState:
    """Read what ``__tmax_snap`` wrote.  Raises `SnapshotError` when it is not complete
    (or, given ``token``, not from the command that used that token).  ``traps`` is what
    ``trap -p`` printed at the top level, next to it."""
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) < 14 or fields[0] != HEADER:
        raise SnapshotError("the shell's state snapshot is missing or incomplete")
    it = iter(fields[1:])
    try:
        if next(it) != "O":
            raise SnapshotError("bad snapshot layout")
        flags, shellopts = next(it), next(it)
        if next(it) != "S":
            raise SnapshotError("bad snapshot layout")
        shopts = next(it)
        if next(it) != "P":
            raise SnapshotError("bad snapshot layout")
        path_set, path_value = next(it), next(it)
        sections: dict[str, str] = {}
        for tag in ("F", "B", "A"):
            if next(it) != tag:
                raise SnapshotError("bad snapshot layout")
            sections[tag] = next(it)
        variables: dict[str, Variable] = {}
        hashed: dict[str, str] = {}
        end: str | None = None
        for tag in it:
            if tag == "V":
                name, attrs, value = next(it), next(it), next(it)
                variables[name] = Variable(value, attrs)
            elif tag == "H":
                name, value = next(it), next(it)
                hashed[name] = value
            elif tag == "END":
                end = next(it)
                break
            else:
                raise SnapshotError("bad snapshot layout")
    except StopIteration:
        raise SnapshotError("the shell's state snapshot is cut short") from None
    if end is None:
        raise SnapshotError("the shell's state snapshot is cut short")
    if token is not None and end != token:
        raise SnapshotError("the shell's state snapshot is stale")
    functions: dict[str, bool] = {}
    for line in sections["F"].splitlines():
        m = _DECLARE_F.match(line)
        if m is None:
            raise SnapshotError(f"unexpected function listing {line!r}")
        functions[m.group(2)] = "x" in m.group(1)
    enabled: set[str] = set()
    disabled: set[str] = set()
    for line in sections["B"].splitlines():
        m = _ENABLE.match(line)
        if m is None:
            raise SnapshotError(f"unexpected builtin listing {line!r}")
        (disabled if m.group(1) else enabled).add(m.group(2))
    options = {o for o in shellopts.split(":") if o}
    options |= {line.split()[0] for line in shopts.splitlines() if line.strip()}
    return ShellState(
        flags=flags,
        options=frozenset(options),
        path=path_value if path_set else None,
        functions=functions,
        builtins=frozenset(enabled),
        disabled=frozenset(disabled),
        aliases=tuple(_ALIAS.findall(sections["A"])),
        traps=traps,
        variables=variables,
        hashed=hashed,
        token=end,
    )


@dataclass(frozen=True)
class LiveState:
    """What `PtyShell.live_state` returns: the snapshot now, the one taken when the shell
    started, and the shell's current directory."""

    now: ShellState
    baseline: ShellState
    cwd: str

    def changes(self) -> list[str]:
        return self.now.changes_since(self.baseline)
