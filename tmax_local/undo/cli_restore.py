"""`tmax-local restore [SESSION] STEP`: put the project back to before a step.

STEP is a step number (the state just before that step's command ran), `uK` (the state
just before the K-th restore: restoring is itself undoable), `end` (when the session
ended) or a checkpoint id. SESSION defaults to the latest session of the project in the
current directory. Shows what will change and asks first (`--yes` skips the question,
`--dry-run` only shows). Paths the checkpoint does not cover (ignored, too large) are left
alone. The project's own `.git` (HEAD, refs, index, stash) is put back too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tmax_local.errors import ConfigError, TmaxError

if TYPE_CHECKING:
    from tmax_local.undo.store import Change

SHOW = 40


class NotConfirmed(TmaxError):
    title = "Not restored"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = "%(prog)s [-h] [--dry-run] [-y] [--cwd DIR] [SESSION] STEP"
    p.add_argument(
        "where",
        nargs="+",
        metavar="[SESSION] STEP",
        help="session (default: latest) and step number, uK, end or a checkpoint id",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--cwd",
        type=Path,
        default=None,
        metavar="DIR",
        help="the project directory (default: here)",
    )


def describe(change: Change, out: TextIO) -> None:
    rows = (
        [("+", p, "re-created") for p in change.added]
        + [("~", p, "put back") for p in change.modified]
        + [("-", p, "deleted") for p in change.deleted]
    )
    out.writelines(f"  {mark} {path}\n" for mark, path, _ in rows[:SHOW])
    if len(rows) > SHOW:
        out.write(f"  … and {len(rows) - SHOW} more\n")
    out.write(
        f"  ({len(change.added)} re-created, {len(change.modified)} put back, "
        f"{len(change.deleted)} deleted)\n"
    )


def run(args: argparse.Namespace) -> int:
    from tmax_local.undo import restore as rs
    from tmax_local.undo.history import find_point, next_undo_label
    from tmax_local.undo.store import Store

    if len(args.where) > 2:
        raise ConfigError("restore takes [SESSION] STEP")
    session_arg, which = (None, args.where[0]) if len(args.where) == 1 else args.where
    store = Store.find(args.cwd or Path.cwd())
    session = store.resolve_session(session_arg)
    point = find_point(store, session, which)
    what = f"step {point.label}" if point.label.isdigit() else point.label
    _current, _target, change = rs.preview(store, point.tree)
    out = sys.stdout
    out.write(f"restore {store.root} to before {what} (checkpoint {point.tree[:10]}):\n")
    if change.empty:
        out.write("  nothing to change: the project already matches it\n")
        return 0
    describe(change, out)
    if args.dry_run:
        return 0
    if not args.yes:
        out.write("restore? [y/N] ")
        out.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise NotConfirmed("not restored (answer y to restore, or pass --yes)")
    label = next_undo_label(store, session)
    progress = _progress_bar()
    try:
        result = rs.restore(
            store,
            point.tree,
            session=session,
            label=label,
            target_label=what,
            progress=progress,
        )
    finally:
        if progress is not None:
            progress.close()
    out.write(f"restored. undo this with: tmax-local restore {session} {label}\n")
    for path, why in result.kept:
        out.write(f"  kept {path}: {why}\n")
    if result.left_different:
        out.write(f"  still different: {', '.join(result.left_different[:10])}\n")
        return 1
    return 0


class _Bar:
    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total < 500:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="path", desc="restoring", file=sys.stderr)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar() -> _Bar | None:
    return _Bar() if sys.stderr.isatty() else None
