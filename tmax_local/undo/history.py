"""A session's checkpoints as a list of points the user can go back to.

Each point is one record of the session log (``Store.record``):

- ``step N``: the project just before step N's command ran;
- ``uK``: the project just before the K-th restore of the session (restore to it to undo
  that restore);
- ``end``: the project when the session ended.

``changes`` of a point is what happened between it and the next point (what the step's
command changed, for a step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from tmax_local.undo.store import Change, CheckpointError, Store, diff_trees


@dataclass
class Point:
    label: str  # "3", "u1", "end"
    tree: str
    t: float
    command: str = ""
    note: str = ""
    changes: Change | None = None


def points(store: Store, session: str, *, with_changes: bool = True) -> list[Point]:
    out: list[Point] = []
    for r in store.records(session):
        kind = r.get("kind")
        if kind == "step":
            out.append(Point(str(r["step"]), r["tree"], r["t"], r.get("command", "")))
        elif kind == "restore":
            out.append(
                Point(
                    r.get("label") or "u?",
                    r["tree"],
                    r["t"],
                    note=f"before restoring to {r.get('target_label') or r['to'][:10]}",
                )
            )
        elif kind == "end":
            out.append(Point("end", r["tree"], r["t"], note="when the session ended"))
    if with_changes:
        trees: dict[str, Any] = {}

        def tree(tid: str) -> Any:
            if tid not in trees:
                trees[tid] = store.read_tree(tid)
            return trees[tid]

        for a, b in pairwise(out):
            a.changes = diff_trees(tree(a.tree), tree(b.tree))
    return out


def next_undo_label(store: Store, session: str) -> str:
    n = sum(1 for r in store.records(session) if r.get("kind") == "restore")
    return f"u{n + 1}"


def find_point(store: Store, session: str, which: str) -> Point:
    """The point a user named: a step number, ``uK``, ``end`` or a checkpoint id prefix."""
    pts = points(store, session, with_changes=False)
    which = which.strip()
    found = [p for p in pts if p.label == which]
    if found:
        return found[-1]
    if re.fullmatch(r"[0-9a-f]{6,64}", which):
        tid = store.resolve_tree(which)
        return Point(which, tid, 0.0, note="checkpoint id")
    labels = ", ".join(p.label for p in pts) or "none"
    raise CheckpointError(f"session {session} has no checkpoint {which!r} (it has: {labels})")
