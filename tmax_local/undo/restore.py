"""Putting a project back to a checkpoint.

``restore(store, target)`` first records the project as it is now (so the restore itself can
be undone), writes a journal naming the target, changes the project, checks the result by
scanning again, and removes the journal. Each file or symlink is written to a temporary name
in its own directory and renamed over the old one, so every path is at any moment either
its old or its new version. A process killed half-way leaves the journal behind; the next
checkpoint or restore (``recover``) finishes the job, which also removes any temporary file
left over.

What a restore touches: every path the checkpoint covers, and every path covered now that
the checkpoint lacks (it is removed). Paths that are not covered now and were not covered
then (ignored, too large, unreadable) are left alone, as are directories that still hold
such paths. File and directory permission bits are restored; owners and timestamps are not
(restored files get the current time, which keeps build tools honest).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tmax_local.undo.scan import DIR, FILE, LINK
from tmax_local.undo.store import Change, CheckpointError, Store, Tree, _atomic_write, diff_trees

TMP_MARK = ".tmax-restore-"


@dataclass
class Plan:
    remove: list[str] = field(default_factory=list)  # deepest first
    mkdir: list[str] = field(default_factory=list)  # shallowest first
    write: list[str] = field(default_factory=list)  # files and symlinks (new content or kind)
    chmod: list[str] = field(default_factory=list)  # same content, other mode
    kept: list[tuple[str, str]] = field(default_factory=list)  # left alone, and why

    @property
    def empty(self) -> bool:
        return not (self.remove or self.mkdir or self.write or self.chmod)


@dataclass
class RestoreResult:
    before: Tree  # the project just before the restore (restore to it to undo)
    target: Tree
    change: Change  # from ``before`` to ``target``
    kept: list[tuple[str, str]]
    left_different: list[str]  # paths that still differ from the target afterwards


def plan(current: Tree, target: Tree) -> Plan:
    p = Plan()
    for path in sorted(current.entries, reverse=True):  # children before parents
        cur = current.entries[path]
        maybe = target.entries.get(path)
        if maybe is not None and maybe.kind == cur.kind:
            continue
        if maybe is None and not target.covers_nothing_at(path):
            p.kept.append((path, "not covered by the checkpoint"))
            continue
        p.remove.append(path)
    for path in sorted(target.entries):
        want = target.entries[path]
        now = current.entries.get(path)
        same_kind = now is not None and now.kind == want.kind
        if want.kind == DIR:
            if not same_kind:
                p.mkdir.append(path)
            elif now is not None and now.mode != want.mode:
                p.chmod.append(path)
        elif not same_kind or now is None or now.data != want.data:
            p.write.append(path)
        elif now.mode != want.mode and want.kind == FILE:
            p.chmod.append(path)
    return p


class _Applier:
    def __init__(self, store: Store, target: Tree, progress: Callable[[int, int], None] | None):
        self.store, self.target, self.root = store, target, store.root
        self.progress = progress
        self.opened: dict[str, int] = {}  # dirs made writable for the job -> their mode
        self.safe_dirs: set[str] = {""}
        self.kept: list[tuple[str, str]] = []

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def parent_ok(self, rel: str) -> bool:
        """The parent of ``rel`` is a real directory inside the project (never a symlink
        that would lead the write elsewhere); made writable if it was not."""
        parent = os.path.dirname(rel)
        if parent not in self.safe_dirs:
            if not self.parent_ok(parent):
                return False
            try:
                st = os.lstat(self.abs(parent))
            except OSError:
                return False
            if not stat.S_ISDIR(st.st_mode):
                return False
            self.safe_dirs.add(parent)
        path = self.abs(parent) if parent else str(self.root)
        if not os.access(path, os.W_OK | os.X_OK) and parent not in self.opened:
            mode = os.lstat(path).st_mode & 0o7777
            os.chmod(path, mode | 0o700)
            self.opened[parent] = mode
        return True

    def run(self, p: Plan) -> None:
        total = len(p.remove) + len(p.mkdir) + len(p.write) + len(p.chmod)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if self.progress is not None and (done % 200 == 0 or done == total):
                self.progress(done, total)

        for rel in p.remove:
            self.remove(rel)
            tick()
        for rel in p.mkdir:
            if self.parent_ok(rel):
                self.mkdir(rel)
            tick()
        for rel in p.write:
            if self.parent_ok(rel):
                self.write(rel)
            tick()
        for rel in p.chmod:
            want = self.target.entries[rel]
            if want.kind == DIR:
                self.opened[rel] = want.mode
            elif self.parent_ok(rel):
                os.chmod(self.abs(rel), want.mode)
            tick()
        # Directory modes last, deepest first (a read-only directory was kept writable
        # until everything inside it was done).
        for rel in sorted(self.opened, reverse=True):
            final = self.target.entries.get(rel)
            mode = final.mode if final is not None and final.kind == DIR else self.opened[rel]
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self.abs(rel) if rel else self.root, mode)

    def mkdir(self, rel: str) -> None:
        """A directory appears with its mode at once (made under a temporary name)."""
        mode = self.target.entries[rel].mode
        path = self.abs(rel)
        tmp = os.path.join(os.path.dirname(path), TMP_MARK + os.path.basename(path)[:100])
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.rmdir(tmp)
        os.mkdir(tmp, 0o700)
        os.chmod(tmp, mode | 0o700)
        if mode & 0o700 != 0o700:
            self.opened[rel] = mode  # kept usable until everything inside is done
        try:
            os.rename(tmp, path)
        except OSError as err:
            os.rmdir(tmp)
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                self.kept.append((rel, "something not covered is in the way"))
            else:
                raise

    def remove(self, rel: str) -> None:
        if not self.parent_ok(rel):
            return
        path = self.abs(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(path)
            except OSError as err:
                if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    self.kept.append((rel, "holds files that are not covered"))
                else:
                    raise
        else:
            os.unlink(path)

    def write(self, rel: str) -> None:
        want = self.target.entries[rel]
        path = self.abs(rel)
        tmp = os.path.join(os.path.dirname(path), TMP_MARK + os.path.basename(path)[:100])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            if want.kind == LINK:
                os.symlink(want.data, tmp)
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    for chunk in self.store.read_object(want.data):
                        out.write(chunk)
                os.chmod(tmp, want.mode)
            if os.path.isdir(path) and not os.path.islink(path):
                self.kept.append((rel, "a directory with files not covered is in the way"))
                os.unlink(tmp)
                return
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def recover(store: Store) -> str | None:
    """Finish a restore that was interrupted (the process was killed); returns its target
    tree id, or None if there was none."""
    journal = store.path / "restore.json"
    if not journal.exists():
        return None
    with store.locked():
        try:
            doc = json.loads(journal.read_text())
            target = store.read_tree(doc["to"])
        except (json.JSONDecodeError, OSError, KeyError, CheckpointError):
            journal.unlink(missing_ok=True)  # written before the project was touched
            return None
        for tmp in leftover_temp_files(store.root):
            if tmp.is_dir() and not tmp.is_symlink():
                tmp.rmdir()  # made empty, renamed into place before anything goes in
            else:
                tmp.unlink(missing_ok=True)
        apply_tree(store, target)
        journal.unlink()
        store.flush_index()
        return target.id


def checkpoint(store: Store) -> Tree:
    """Record the project now, after finishing any interrupted restore."""
    with store.locked():
        recover(store)
        return store.snapshot()


def apply_tree(
    store: Store,
    target: Tree,
    *,
    current: Tree | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Plan, list[tuple[str, str]], Tree]:
    """Make the project match ``target``; returns (plan, paths kept, tree afterwards)."""
    with store.locked():
        if current is None:
            current = store._snapshot()
        p = plan(current, target)
        applier = _Applier(store, target, progress)
        try:
            applier.run(p)
        except OSError as err:
            raise CheckpointError(
                f"restore stopped at {err.filename or '?'}: {err.strerror}; fix that and run "
                "the restore again (it picks up where it stopped)"
            ) from None
        after = store._snapshot()
        return p, p.kept + applier.kept, after


def restore(
    store: Store,
    target_id: str,
    *,
    session: str | None = None,
    label: str | None = None,
    target_label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Put the project back to checkpoint ``target_id`` (see the module doc). The state just
    before is recorded in ``session``'s log as an undo point ``label``."""
    with store.locked():
        recover(store)
        target = store.read_tree(target_id)
        before = store._snapshot()
        if session is not None:
            store.record(
                session,
                kind="restore",
                tree=before.id,
                to=target.id,
                label=label,
                target_label=target_label,
            )
        _atomic_write(store.path, "restore.json", json.dumps({"to": target.id, "from": before.id}))
        _p, kept, after = apply_tree(store, target, current=before, progress=progress)
        (store.path / "restore.json").unlink()
        store.flush_index()
        left = diff_trees(target, after)
        differing = [
            x
            for x in left.added + left.modified + left.deleted
            if not any(x == k or x.startswith(k.rstrip("/") + "/") for k, _ in kept)
        ]
        return RestoreResult(before, target, diff_trees(before, target), kept, differing)


def preview(store: Store, target_id: str) -> tuple[Tree, Tree, Change]:
    """(current, target, change) without touching the project."""
    with store.locked():
        recover(store)
        target = store.read_tree(target_id)
        current = store._snapshot()
        return current, target, diff_trees(current, target)


def leftover_temp_files(root: Path) -> list[Path]:
    """Temporary files of an interrupted restore still in the project (tests use this)."""
    return [p for p in root.rglob(TMP_MARK + "*")]
