"""The live shell's side of a decision: what each command name means *now*.

`decide` judges the text of a command. Before a command runs without a person approving
it (an allow rule, or ``auto`` mode), the gate also asks the running shell (a `LiveShell`,
implemented by `tmax_local.shell.PtyShell`) for a snapshot of its state, and asks the user
when the shell would not run what the text reads:

- a part's command name (or the wrapper in front of it: ``timeout``, ``command``…) is a
  shell function, a builtin that was disabled or newly loaded, or a file found on ``PATH``
  inside the project, in a world-writable directory, or after a ``PATH`` entry that is
  relative, inside the project or world-writable (a file could appear there first);
- the shell changed since it started in a way that changes what every command does:
  sensitive variables (``GIT_PAGER``, ``BASH_ENV``, ``CDPATH``, ``LD_PRELOAD``…), traps,
  risky options (``set -k``, ``extdebug``…), aliases turned back on, exported functions.

Nothing here runs anything; `live_reasons` is pure given the snapshot (and file metadata).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from tmax_local.approval.live_git import git_reasons
from tmax_local.approval.policy import Decision
from tmax_local.approval.syntax import Part
from tmax_local.shell.state import (
    BASH_DEFAULT_PATH,
    LiveState,
    Resolution,
    ShellState,
    search_path,
)

# The wrapper words `via` starts with, and how the wrapped name is then found.
_BASH_LOOKUP = {"time", "sudo", "doas", "bash", "sh", "dash", "zsh", "ksh", "trap", "coproc"}
_NO_FUNCTIONS = {"command"}
_BUILTIN_ONLY = {"builtin"}


@runtime_checkable
class LiveShell(Protocol):
    """A shell that can say what state it is in (see `tmax_local.shell.state`)."""

    def live_state(self) -> LiveState:
        """The snapshot now and at start; raises ``SnapshotError`` when it cannot."""
        ...


NameResolver = LiveShell
"""The same protocol under the name the issue uses."""


def live_reasons(decision: Decision, live: LiveState, project_root: Path | str) -> list[str]:
    """Why the parts of ``decision`` may not run unasked in this shell (empty: they may)."""
    root = Path(os.path.realpath(project_root))
    reasons = [f"the shell has changed: {why}" for why in live.changes()]
    reasons += _hash_reasons(live)
    for pd in decision.parts:
        part = pd.part
        if part.kind != "command" or not part.words:
            continue
        for name, how in _names(part):
            why = _judge(name, how, live, root)
            if why:
                reasons.append(f"{part.display}: {why}")
        if part.program == "git":
            reasons += [f"{part.display}: {why}" for why in git_reasons(part, live.cwd)]
    return list(dict.fromkeys(reasons))


def _hash_reasons(live: LiveState) -> list[str]:
    """Hash-table entries that point somewhere a PATH search would not (``hash -p``).
    The shell flushes the table after every command, so this asks once, right after."""
    out = []
    for name, path in sorted(live.now.hashed.items()):
        found = search_path(name, live.now.path, live.cwd)
        real = os.path.realpath(os.path.join(live.cwd, path))
        if found is None or os.path.realpath(found[0]) != real:
            out.append(
                f"the shell has changed: `{name}` was hashed to {path} by an earlier command "
                "(`hash -p`); the table has been flushed since"
            )
    return out


def _names(part: Part) -> list[tuple[str, str]]:
    """The command names bash or a wrapper will look up for ``part``, with how:
    ``direct`` (bash: function, builtin, PATH), ``command`` (no functions), ``builtin``,
    or ``exec`` (a program's PATH search)."""
    via = part.via.split()
    out: list[tuple[str, str]] = []
    if via:
        out.append((via[0], "direct"))
        first = via[0].rsplit("/", 1)[-1]
        how = (
            "command"
            if first in _NO_FUNCTIONS
            else "builtin"
            if first in _BUILTIN_ONLY
            else "direct"
            if first in _BASH_LOOKUP
            else "exec"
        )
    else:
        how = "direct"
    out.append((part.name, how))
    return out


def _judge(name: str, how: str, live: LiveState, root: Path) -> str | None:
    now, base = live.now, live.baseline
    if name.startswith("__tmax_") and name in base.functions:
        return None
    if name in now.functions and how in ("direct", "exec"):
        # `exec`: a program run by name never runs a function, but a bash it starts
        # may (exported functions); asking is the safe answer either way.
        return f"`{name}` is a shell function here (defined by an earlier command)"
    if how in ("direct", "command", "builtin"):
        if name in now.builtins:
            if name not in base.builtins:
                return f"`{name}` is a builtin loaded by an earlier command (`enable -f`)"
            return None
        if name in base.builtins:
            return f"the builtin `{name}` was disabled by an earlier command (`enable -n`)"
        if how == "builtin":
            return None  # `builtin x` with no such builtin fails without running anything
    if name in now.functions:
        return f"`{name}` is a shell function here (defined by an earlier command)"
    res = now.resolve(name, live.cwd, direct=False)
    return _judge_file(res, now, live.cwd, root)


def _judge_file(res: Resolution, now: ShellState, cwd: str, root: Path) -> str | None:
    if "/" in res.name:
        return None  # a path: the rule that matched it names that very file
    path = now.path if now.path is not None else BASH_DEFAULT_PATH
    entries = res.searched if res.kind == "file" else tuple(path.split(":"))
    for entry in entries:
        why = _untrusted_dir(entry, cwd, root)
        if why is not None:
            shown = entry or "(empty: the current directory)"
            if res.kind == "file" and entry == entries[-1]:
                return f"`{res.name}` would run {res.path} from PATH entry {shown} ({why})"
            return f"PATH searches {shown} ({why}) before `{res.name}` is found"
    if res.kind == "file" and res.path is not None:
        why = _untrusted_dir(os.path.dirname(os.path.realpath(res.path)), cwd, root)
        if why is not None:
            return f"`{res.name}` would run {os.path.realpath(res.path)} ({why})"
    return None


def _untrusted_dir(entry: str, cwd: str, root: Path) -> str | None:
    """Why files in PATH entry ``entry`` cannot be trusted to be what their name says."""
    if not entry or not entry.startswith("/"):
        return "a relative PATH entry"
    real = Path(os.path.realpath(os.path.join(cwd, entry)))
    if real == root or root in real.parents:
        return "inside the project"
    for d in (real, *real.parents):
        try:
            mode = os.stat(d).st_mode
        except OSError:
            continue
        if mode & stat.S_IWOTH:
            return f"under the world-writable {d}"
    return None
