"""The shadow store: content-addressed checkpoints of one project directory.

Layout, under ``<data dir>/checkpoints/<name>-<hash of the project path>/``::

    project.json            {"root": "/abs/project", "version": 1}
    lock                    fcntl lock: one snapshot or restore at a time
    HEAD                    id of the latest tree
    index.json              stat fields of a recent tree's files: a file whose fields did not
                            change is not read again (written every 16 snapshots and at the
                            end of a session; a stale one only costs re-reading)
    objects/ab/cdef...      file contents, zlib-compressed, named by the SHA-256 of the content
    trees/<id>.json         a tree: every covered path with kind, mode, size, content id or
                            symlink target, and the list of what was not covered; ``id`` is the
                            SHA-256 of the covered part. Stored whole, or as the changes
                            against an earlier tree (chains of at most 32)
    sessions/<session>.jsonl  one record per checkpoint of that session (see ``checkpoints``)
    restore.json            journal of a restore in progress (see ``restore.recover``)
    ignore.git/             an empty bare git repository, only to ask git about .gitignore
    tmp/                    temporary files (renamed into place when complete)

Nothing here ever touches the project's own ``.git`` except a restore, which puts the whole
project (``.git`` included) back as it was.

Every file of the store is written to ``tmp/`` and renamed into place, so killing the
process at any moment leaves only complete objects, trees and records (a torn last line of a
session log is skipped when read). Objects are written before the tree that names them, and
the tree before the session record that names it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmax_local.errors import TmaxError
from tmax_local.undo import watch
from tmax_local.undo.scan import (
    DIR,
    FILE,
    LINK,
    Record,
    ScanResult,
    TooManyPaths,
    ensure_ignore_repo,
    has_gnu_find,
    record_ctime_ns,
    record_kind,
    record_mode,
    record_size,
    record_target,
    scan,
)
from tmax_local.undo.watch import TreeWatcher

DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
# New content one checkpoint may copy in (the first one of a big project copies it all);
# files beyond it are listed as not covered and tried again at the next checkpoint.
DEFAULT_MAX_NEW_BYTES = 2 * 1024**3
# A directory with more paths than this (a home directory, /) is refused, not scanned.
DEFAULT_MAX_PATHS = 300_000
CHUNK = 1 << 20
# A file whose ctime is this close to the moment we read it may change again within the same
# timestamp tick (kernel timestamps are coarse, a few ms); its stat fields are not trusted
# next time (git calls such entries "racy").
RACY_NS = 50_000_000
MAX_DELTA_CHAIN = 32  # a tree is stored whole after this many deltas
INDEX_EVERY = 16  # snapshots between writes of the stat cache (and at the end of a session)


class CheckpointError(TmaxError):
    title = "Checkpoints"


class ProjectTooLarge(CheckpointError):
    """The directory holds too many paths to checkpoint (a home directory, /)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A covered path in a tree. ``data``: content id (files), target (symlinks), "" (dirs)."""

    kind: str
    mode: int
    size: int
    data: str

    def same_content(self, other: Entry | None) -> bool:
        return other is not None and (self.kind, self.mode, self.data) == (
            other.kind,
            other.mode,
            other.data,
        )


@dataclass
class Tree:
    id: str
    entries: dict[str, Entry]
    not_covered: list[tuple[str, str]] = field(default_factory=list)
    depth: int = 0  # length of its chain of deltas (0: stored whole)
    acc: int = 0  # sum of its row hashes mod 2**256 (see ``row_hash``); the id derives from it

    def covers_nothing_at(self, path: str) -> bool:
        """True unless ``path`` (or a directory above it) was listed as not covered."""
        for p, _ in self.not_covered:
            if p.endswith("/"):
                if path == p[:-1] or path.startswith(p):
                    return False
            elif path == p:
                return False
        return True


@dataclass(frozen=True)
class Change:
    added: list[str]
    modified: list[str]
    deleted: list[str]

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.deleted)

    def summary(self) -> str:
        if self.empty:
            return "no changes"
        parts = []
        for n, word in (
            (len(self.added), "added"),
            (len(self.modified), "modified"),
            (len(self.deleted), "deleted"),
        ):
            if n:
                parts.append(f"{n} {word}")
        return ", ".join(parts)


def diff_trees(old: Tree, new: Tree) -> Change:
    """What changed from ``old`` to ``new`` (directories count only when added/removed)."""
    added, modified, deleted = [], [], []
    for path, e in new.entries.items():
        o = old.entries.get(path)
        if o is None:
            added.append(path)
        elif not e.same_content(o) and not (e.kind == DIR and o.kind == DIR and e.mode == o.mode):
            modified.append(path)
    deleted = [p for p in old.entries if p not in new.entries]
    return Change(sorted(added), sorted(modified), sorted(deleted))


def project_key(root: Path) -> str:
    digest = hashlib.sha256(os.fsencode(str(root))).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40] or "root"
    return f"{name}-{digest}"


def checkpoints_dir() -> Path:
    from tmax_local.paths import data_dir

    return data_dir() / "checkpoints"


class Store:
    """The shadow store of one project (see the module doc). Open with ``Store.open(root)``."""

    def __init__(
        self,
        root: Path,
        path: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_new_bytes: int = DEFAULT_MAX_NEW_BYTES,
        max_paths: int = DEFAULT_MAX_PATHS,
        watch: bool = True,
    ):
        self.root = root
        self.path = path
        self.max_file_bytes = max_file_bytes
        self.max_new_bytes = max_new_bytes
        self.max_paths = max_paths
        self._budget = 0
        self.use_find = has_gnu_find()
        self._last: Tree | None = None  # the latest tree this process recorded
        self._cache: dict[str, Record] = {}  # scan records known to match _last
        self._scan: ScanResult | None = None  # the last scan (its ignore answer is reused)
        # inotify on the project's directories: a checkpoint stats only what changed
        self._watch = watch  # watch.usable() decides per platform and filesystem
        self._watcher: TreeWatcher | None = None
        self._index_saved = True
        self._unsaved = 0
        self._trees: dict[str, Tree] = {}  # recently read trees
        self._lock_depth = 0
        self._thread_lock = threading.RLock()
        self._lock_fh: Any = None

    # --- opening ----------------------------------------------------------------------
    @classmethod
    def open(
        cls, root: str | Path, *, base: Path | None = None, create: bool = True, **kw: Any
    ) -> Store:
        root = Path(root).resolve()
        path = (base or checkpoints_dir()) / project_key(root)
        if not (path / "project.json").exists():
            if not create:
                raise CheckpointError(f"no checkpoints recorded for {root}")
            for sub in ("trees", "sessions", "tmp"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            for i in range(256):
                (path / "objects" / f"{i:02x}").mkdir(parents=True, exist_ok=True)
            _atomic_write(path, "project.json", json.dumps({"root": str(root), "version": 1}))
        return cls(root, path, **kw)

    @classmethod
    def find(cls, start: str | Path, *, base: Path | None = None, **kw: Any) -> Store:
        """The store of ``start`` or of the nearest directory above it that has one."""
        here = Path(start).resolve()
        for d in (here, *here.parents):
            path = (base or checkpoints_dir()) / project_key(d)
            if (path / "project.json").exists():
                return cls(d, path, **kw)
        raise CheckpointError(f"no checkpoints recorded for {here} or any directory above it")

    # --- locking ----------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the store: against other threads (re-entrant) and processes."""
        with self._thread_lock:
            if self._lock_depth == 0:
                fh = open(self.path / "lock", "a+b")  # noqa: SIM115
                fcntl.flock(fh, fcntl.LOCK_EX)
                self._lock_fh = fh
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
                    self._lock_fh.close()
                    self._lock_fh = None

    # --- objects ----------------------------------------------------------------------
    def _object_path(self, oid: str) -> Path:
        return self.path / "objects" / oid[:2] / oid[2:]

    def has_object(self, oid: str) -> bool:
        return self._object_path(oid).exists()

    def store_file(self, abs_path: str | Path) -> tuple[str, int]:
        """Copy one file's content in (compressed), return (content id, size read)."""
        with open(abs_path, "rb") as src:
            data = src.read(CHUNK)
            if len(data) < CHUNK:  # small file: in memory, no temporary file if known
                oid = hashlib.sha256(data).hexdigest()
                dest = self._object_path(oid)
                if not dest.exists():
                    fd, tmp = _mkstemp(self.path / "tmp")
                    try:
                        with os.fdopen(fd, "wb") as out:
                            out.write(zlib.compress(data, 1))
                        os.rename(tmp, dest)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            os.unlink(tmp)
                        raise
                return oid, len(data)
        h = hashlib.sha256()
        comp = zlib.compressobj(1)
        size = 0
        fd, tmp = _mkstemp(self.path / "tmp")
        try:
            with open(abs_path, "rb") as src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(comp.compress(chunk))
                out.write(comp.flush())
            oid = h.hexdigest()
            dest = self._object_path(oid)
            if dest.exists():
                os.unlink(tmp)
            else:
                os.rename(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return oid, size

    def read_object(self, oid: str) -> Iterator[bytes]:
        """The content of an object, in chunks; verifies its id at the end."""
        h = hashlib.sha256()
        dec = zlib.decompressobj()
        try:
            fh = open(self._object_path(oid), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise CheckpointError(f"the checkpoint store lacks object {oid[:12]}") from None
        with fh:
            while chunk := fh.read(CHUNK):
                data = dec.decompress(chunk)
                h.update(data)
                yield data
            data = dec.flush()
            h.update(data)
            yield data
        if h.hexdigest() != oid:
            raise CheckpointError(f"object {oid[:12]} in the checkpoint store is damaged")

    # --- trees ---------------------------------------------------------------------
    def write_tree(
        self,
        entries: dict[str, Entry],
        not_covered: list[tuple[str, str]],
        acc: int,
        base: Tree | None = None,
        changed: list[str] | None = None,
        deleted: list[str] | None = None,
    ) -> Tree:
        """Store a tree: as the ``changed``/``deleted`` paths against ``base`` when those are
        few, else whole. ``acc`` is the sum of its row hashes, which the caller keeps up to
        date row by row (so an unchanged path costs no hashing)."""
        tid = tree_id(acc)
        nc = sorted(not_covered)
        if (self.path / "trees" / f"{tid}.json").exists():
            depth = base.depth if base is not None and base.id == tid else None
            if depth is None:
                depth = self.read_tree(tid).depth
            tree = Tree(tid, entries, nc, depth, acc)
            self._remember(tree)
            return tree
        doc: dict[str, Any] = {"acc": f"{acc:064x}", "not_covered": nc}
        depth = 0
        if (
            base is not None
            and changed is not None
            and deleted is not None
            and base.depth < MAX_DELTA_CHAIN
            and len(changed) + len(deleted) <= max(64, len(entries) // 8)
        ):
            depth = base.depth + 1
            doc.update(
                base=base.id,
                depth=depth,
                set=[row(p, entries[p]) for p in changed],
                delete=deleted,
            )
        else:
            doc["rows"] = [row(p, e) for p, e in sorted(entries.items())]
        _atomic_write(self.path, f"trees/{tid}.json", json.dumps(doc, separators=(",", ":")))
        tree = Tree(tid, entries, nc, depth, acc)
        self._remember(tree)
        return tree

    def _remember(self, tree: Tree) -> None:
        self._trees[tree.id] = tree
        while len(self._trees) > 8:
            self._trees.pop(next(iter(self._trees)))

    def read_tree(self, tid: str) -> Tree:
        if tid in self._trees:
            return self._trees[tid]
        try:
            doc = json.loads((self.path / "trees" / f"{tid}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"unknown checkpoint {tid[:12]}") from None
        if "base" in doc:
            base = self.read_tree(doc["base"])
            entries = dict(base.entries)
            for p in doc["delete"]:
                entries.pop(p, None)
            for r in doc["set"]:
                entries[r[0]] = Entry(r[1], r[2], r[3], r[4])
        else:
            entries = {r[0]: Entry(r[1], r[2], r[3], r[4]) for r in doc["rows"]}
        nc = [(str(a), str(b)) for a, b in doc["not_covered"]]
        tree = Tree(tid, entries, nc, int(doc.get("depth", 0)), int(doc["acc"], 16))
        self._remember(tree)
        return tree

    def resolve_tree(self, prefix: str) -> str:
        matches = [p.stem for p in (self.path / "trees").glob(f"{prefix}*.json")]
        if len(matches) != 1:
            raise CheckpointError(
                f"no checkpoint {prefix}" if not matches else f"checkpoint {prefix} is ambiguous"
            )
        return matches[0]

    def head(self) -> str | None:
        try:
            return (self.path / "HEAD").read_text().strip() or None
        except FileNotFoundError:
            return None

    # --- the stat cache ---------------------------------------------------------------
    def _previous(self) -> tuple[Tree | None, dict[str, Record]]:
        """The latest tree, and the scan records of its paths that are known to match it
        (a path whose new record is the same is not looked at again)."""
        if self._last is not None:
            return self._last, self._cache
        try:
            doc = json.loads((self.path / "index.json").read_text(encoding="utf-8"))
            tree = self.read_tree(doc["tree"])
            return tree, {p: tuple(v) for p, v in doc["cache"].items()}
        except (FileNotFoundError, json.JSONDecodeError, KeyError, ValueError, CheckpointError):
            pass
        tid = self.head()
        if tid is None:
            return None, {}
        try:
            return self.read_tree(tid), {}
        except (CheckpointError, json.JSONDecodeError, KeyError, ValueError):
            return None, {}

    def flush_index(self) -> None:
        """Keep the stat cache on disk (a later process then reads only what changed)."""
        with self.locked():
            if self._last is None or self._index_saved:
                return
            doc = {"tree": self._last.id, "cache": self._cache}
            _atomic_write(self.path, "index.json", json.dumps(doc, separators=(",", ":")))
            self._index_saved = True
            self._unsaved = 0

    # --- snapshot ---------------------------------------------------------------------
    def _tree_watcher(self) -> TreeWatcher | None:
        if self._watcher is None and self._watch:
            self._watch = False  # one try per store
            if watch.usable(str(self.root)):
                try:
                    self._watcher = TreeWatcher(str(self.root))
                except OSError:
                    pass  # no inotify instance left (the user's limit): full scans
        return self._watcher

    def close(self) -> None:
        """Release the watcher (the store stays usable, with full scans)."""
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def _skip_paths(self) -> list[str]:
        try:
            rel = self.path.resolve().relative_to(self.root)
        except ValueError:
            return []
        return [str(rel)]

    def snapshot(self) -> Tree:
        """Record the project as it is now; returns its tree (unchanged files cost a stat).
        Callers that may follow an interrupted restore use ``restore.checkpoint`` instead,
        which finishes that restore first."""
        with self.locked():
            return self._snapshot()

    def _snapshot(self) -> Tree:
        ignore_repo = self.path / "ignore.git"
        for part in (self.path / "tmp").glob(".part-*"):  # left by a killed process
            part.unlink(missing_ok=True)
        try:
            result = scan(
                self.root,
                ignore_repo=ignore_repo if ensure_ignore_repo(ignore_repo) else None,
                skip=self._skip_paths(),
                use_find=self.use_find,
                previous=self._scan,
                max_paths=self.max_paths,
                watcher=self._tree_watcher(),
            )
        except TooManyPaths:
            raise ProjectTooLarge(
                f"{self.root} holds more than {self.max_paths:,} paths: too many to "
                "checkpoint; run from a project directory or with --no-checkpoints"
            ) from None
        self._scan = result
        records = result.records
        self._budget = self.max_new_bytes
        prev, prev_cache = self._previous()
        entries: dict[str, Entry] = dict(prev.entries) if prev is not None else {}
        acc = prev.acc if prev is not None else 0
        changed: list[str] = []
        deleted: list[str] = []
        not_covered = list(result.not_covered)
        if not result.ignore_rules_applied:
            not_covered.append(("", "git not found: .gitignore rules were not applied"))
        # A path whose record is the same as at the last scan keeps its entry; only the
        # others are looked at (set difference of the two item views, in C).
        cache: dict[str, Record] = dict(records)
        for rel, rec in sorted(records.items() - prev_cache.items()):
            kind = record_kind(rec)
            trusted = True
            new: Entry | str
            if kind == DIR:
                new = Entry(DIR, record_mode(rec), 0, "")
            elif kind == LINK:
                new = Entry(LINK, record_mode(rec), record_size(rec), record_target(rec))
            else:
                new, trusted = self._file_entry(rel, rec)
            old = entries.get(rel)
            if isinstance(new, str):
                del cache[rel]
                not_covered.append((rel, new))
                if old is not None:
                    acc -= row_hash(rel, entries.pop(rel))
                    deleted.append(rel)
                continue
            if not trusted:
                del cache[rel]
            if old != new:
                if old is not None:
                    acc -= row_hash(rel, old)
                acc += row_hash(rel, new)
                entries[rel] = new
                changed.append(rel)
        for p in sorted(entries.keys() - records.keys()):
            acc -= row_hash(p, entries.pop(p))
            deleted.append(p)
        acc %= ACC_MOD
        tree = self.write_tree(entries, not_covered, acc, prev, changed, deleted)
        moved = self._last is None or tree.id != self._last.id
        if moved or changed or deleted or len(cache) != len(self._cache):
            self._index_saved = False
            self._unsaved += 1
        self._last, self._cache = tree, cache
        if moved:
            _atomic_write(self.path, "HEAD", tree.id)
        if self._unsaved >= INDEX_EVERY:
            self.flush_index()
        return tree

    def _file_entry(self, rel: str, rec: Record) -> tuple[Entry | str, bool]:
        """A file whose record changed: its content is read (stored if new). Returns the
        entry (or why it is not covered) and whether its record can be trusted next time
        (not if it was read too close to its last change)."""
        size = record_size(rec)
        if size > self.max_file_bytes:
            return f"larger than the {self.max_file_bytes // (1024 * 1024)} MB limit", True
        if size > self._budget:
            return "over this checkpoint's budget of new content (kept at the next one)", False
        self._budget -= size
        read_ns = time.time_ns()
        try:
            oid, got = self.store_file(self.root / rel)
        except OSError as err:
            return f"could not be read ({err.strerror})", False
        trusted = got == size and record_ctime_ns(rec) < read_ns - RACY_NS
        return Entry(FILE, record_mode(rec), got, oid), trusted

    # --- sessions ---------------------------------------------------------------------
    def record(self, session: str, **fields: Any) -> None:
        """Append one record to a session's log (a single write of one line)."""
        line = json.dumps({"t": round(time.time(), 3), **fields}, ensure_ascii=False) + "\n"
        fd = os.open(
            self.path / "sessions" / f"{session}.jsonl",
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def sessions(self) -> list[str]:
        """Session ids, newest first."""
        files = sorted(
            (self.path / "sessions").glob("*.jsonl"),
            key=lambda p: (p.stat().st_mtime, p.name),
            reverse=True,
        )
        return [p.stem for p in files]

    def records(self, session: str) -> list[dict[str, Any]]:
        path = self.path / "sessions" / f"{session}.jsonl"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CheckpointError(f"no session {session} in {self.root}") from None
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a record torn by a crash
        return out

    def resolve_session(self, session: str | None) -> str:
        sessions = self.sessions()
        if not sessions:
            raise CheckpointError(f"no sessions with checkpoints in {self.root}")
        if session is None:
            return sessions[0]
        if session in sessions:
            return session
        matches = [s for s in sessions if session in s]
        if len(matches) == 1:
            return matches[0]
        raise CheckpointError(
            f"no session matching {session!r} in {self.root}"
            if not matches
            else f"session {session!r} is ambiguous: {', '.join(matches[:5])}"
        )

    # --- consistency ---------------------------------------------------------------
    def fsck(self) -> list[str]:
        """Problems in the store (empty when consistent): every tree parses, every object a
        tree names exists and matches its id, every session record names a known tree."""
        problems = []
        seen: set[str] = set()
        for tpath in (self.path / "trees").glob("*.json"):
            try:
                tree = self.read_tree(tpath.stem)
            except (json.JSONDecodeError, KeyError, IndexError) as err:
                problems.append(f"tree {tpath.stem[:12]} unreadable: {err}")
                continue
            if tree_id(sum(row_hash(p, e) for p, e in tree.entries.items())) != tree.id:
                problems.append(f"tree {tpath.stem[:12]} does not match its id")
            for p, e in tree.entries.items():
                if e.kind == FILE and e.data not in seen:
                    seen.add(e.data)
                    try:
                        for _ in self.read_object(e.data):
                            pass
                    except CheckpointError as err:
                        problems.append(f"{p}: {err}")
        for s in self.sessions():
            for r in self.records(s):
                for k in ("tree", "from", "to"):
                    if k in r and not (self.path / "trees" / f"{r[k]}.json").exists():
                        problems.append(f"session {s}: unknown tree {r[k][:12]}")
        head = self.head()
        if head and not (self.path / "trees" / f"{head}.json").exists():
            problems.append(f"HEAD names unknown tree {head[:12]}")
        return problems


ACC_MOD = 1 << 256


def row(path: str, e: Entry) -> list[Any]:
    return [path, e.kind, e.mode, e.size, e.data]


def row_hash(path: str, e: Entry) -> int:
    """One covered path as a number; a tree's ``acc`` is the sum of these (mod 2**256), so
    it can be updated path by path. The tree id is the SHA-256 of that sum."""
    text = json.dumps(row(path, e), ensure_ascii=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def tree_id(acc: int) -> str:
    return hashlib.sha256(b"tmax-tree-1:" + (acc % ACC_MOD).to_bytes(32, "big")).hexdigest()


def _mkstemp(directory: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(dir=directory, prefix=".part-")


def _atomic_write(base: Path, rel: str, text: str) -> None:
    fd, tmp = _mkstemp(base / "tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, base / rel)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
