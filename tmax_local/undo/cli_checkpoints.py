"""`tmax-local checkpoints [SESSION]`: what each step of a session changed, and its checkpoint.

SESSION is a session id (or a unique part of one); by default the latest session recorded
for the project in the current directory (or the nearest directory above it that has
checkpoints). Go back with `tmax-local restore [SESSION] STEP`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", nargs="?", help="session id or a unique part of it (default: latest)")
    p.add_argument("--cwd", type=Path, default=None, help="the project directory (default: here)")
    p.add_argument("--sessions", action="store_true", help="list the project's sessions instead")
    p.add_argument(
        "--files", action="store_true", help="list the files each step added/modified/deleted"
    )


def _when(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else ""


def run(args: argparse.Namespace) -> int:
    from tmax_local.undo.history import points
    from tmax_local.undo.store import Store

    store = Store.find(args.cwd or Path.cwd())
    if args.sessions:
        for s in store.sessions():
            pts = points(store, s, with_changes=False)
            print(f"{s}  {len(pts)} checkpoints")
        return 0
    session = store.resolve_session(args.session)
    pts = points(store, session)
    print(f"session {session} · project {store.root}")
    print(f"{'step':>5}  {'time':8}  {'checkpoint':10}  {'what it changed':28}  command")
    for p in pts:
        changes = p.changes.summary() if p.changes is not None else ""
        what = p.command.splitlines()[0] if p.command else f"({p.note})"
        if p.command and "\n" in p.command:
            what += " …"
        print(f"{p.label:>5}  {_when(p.t):8}  {p.tree[:10]}  {changes:28}  {what[:80]}")
        if args.files and p.changes is not None:
            for mark, paths in (
                ("+", p.changes.added),
                ("~", p.changes.modified),
                ("-", p.changes.deleted),
            ):
                for path in paths:
                    print(f"{'':>7}{mark} {path}")
    if pts:
        last = store.read_tree(pts[-1].tree)
        if last.not_covered:
            shown = ", ".join(f"{p or '.'} ({why})" for p, why in last.not_covered[:8])
            more = len(last.not_covered) - 8
            print(f"not covered: {shown}" + (f" and {more} more" if more > 0 else ""))
    print(f"go back with: tmax-local restore {session} STEP  (--dry-run to see the changes)")
    return 0
