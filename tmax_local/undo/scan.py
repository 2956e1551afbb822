"""Scanning a project directory: what is there, and what a checkpoint cannot cover.

``scan(root, ...)`` returns every file, symlink and directory under ``root`` with the stat
fields a checkpoint needs (type, permission bits, size, mtime/ctime in ns, inode), never
following symlinks. Paths are relative, ``/``-separated ``str`` (undecodable bytes kept by
``os.fsdecode``'s surrogate escapes).

What is left out, and listed as not covered (never silently):

- paths ignored by the project's ``.gitignore`` files (and ``.git/info/exclude``), asked of
  ``git ls-files --ignored`` run against an empty repository of ours, so the user's own
  repository is only read, never written; a wholly ignored directory is one entry;
- sockets, FIFOs and device files (they have no content to keep);
- the ``skip`` paths (the checkpoint store itself when it lives inside the project).

The user's ``.git`` directory is *not* left out: it is scanned like any other directory, so
a checkpoint holds the repository's HEAD, refs, index, stash and objects too.

The fast path lists the tree with GNU ``find -printf`` (one process, stat in C, ~5x faster
than ``os.scandir`` + ``lstat`` in Python on 10,000 files); ``walk_python`` is the portable
fallback and the reference the tests compare it with.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tmax_local.undo.watch import TreeWatcher

# Entry kinds.
FILE, LINK, DIR = "f", "l", "d"
_KINDS = frozenset((FILE, LINK, DIR))


# One scanned path: (kind, mode, size, ctime, inode, symlink target, link count), all
# text as find prints them (mode in octal, ctime as seconds.fraction). Two scans of an
# unchanged path give equal records, so a record is compared whole and parsed only when
# it changed. The ctime (not the mtime) is kept: every write, chmod, rename or
# `touch -d` moves it, and no user command can set it back.
Record = tuple[str, str, str, str, str, str, str]


def record_kind(rec: Record) -> str:
    return rec[0]


def record_mode(rec: Record) -> int:
    return int(rec[1], 8)


def record_size(rec: Record) -> int:
    return int(rec[2])


def record_target(rec: Record) -> str:
    return rec[5]


def record_multilink(rec: Record) -> bool:
    """A file with more than one hard link (it can change through a name we do not watch)."""
    return rec[0] == FILE and rec[6] != "1"


def record_ctime_ns(rec: Record) -> int:
    sec, _, frac = rec[3].partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


@dataclass
class ScanResult:
    records: dict[str, Record] = field(default_factory=dict)
    # (path, reason) for what is not covered; a directory path ends with "/".
    not_covered: list[tuple[str, str]] = field(default_factory=list)
    ignore_rules_applied: bool = True
    ignored: list[str] | None = None  # git's answer (directories end with "/")
    git_asked: bool = True  # False when the previous answer still held
    special: list[tuple[str, str]] = field(default_factory=list)  # not covered, not ignored
    full: bool = True  # every path was listed (False: only what the watcher reported)
    since_full: int = 0  # scans since the last full one
    multilink: set[str] = field(default_factory=set)  # files with other hard links
    unsettled: set[str] = field(default_factory=set)  # watched only after they were listed


def git_env() -> dict[str, str]:
    """An environment for our own git calls: none of the user's GIT_* variables, no global
    or system config (hooks, fsmonitor, aliases), no prompts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def ensure_ignore_repo(path: Path) -> bool:
    """An empty bare repository used only to ask git about ignore rules. False if no git."""
    if (path / "HEAD").exists():
        return True
    git = shutil.which("git")
    if git is None:
        return False
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        [git, "init", "-q", "--bare", str(tmp)],
        env=git_env(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    try:
        os.rename(tmp, path)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return (path / "HEAD").exists()


def ignored_paths(root: Path, ignore_repo: Path | None) -> list[str] | None:
    """Paths git's ignore rules exclude (directories end with "/"); None if git is unusable."""
    git = shutil.which("git")
    if git is None or ignore_repo is None:
        return None
    cmd = [
        git,
        f"--git-dir={ignore_repo}",
        f"--work-tree={root}",
        "-c",
        "core.quotePath=false",
        "ls-files",
        "-z",
        "--others",
        "--ignored",
        "--exclude-standard",
        "--directory",
    ]
    info_exclude = root / ".git" / "info" / "exclude"
    if info_exclude.is_file():
        cmd.append(f"--exclude-from={info_exclude}")
    proc = subprocess.run(cmd, cwd=root, env=git_env(), capture_output=True, check=False)
    if proc.returncode != 0:
        return None
    listed = sorted(os.fsdecode(p) for p in proc.stdout.split(b"\0") if p)
    # A directory git calls ignored only because everything in it is ignored comes with
    # its entries listed after it: it is not pruned (a file made in it later is not
    # ignored and must be seen), so only its entries count. One ignored by a rule of its
    # own comes alone.
    return [
        p
        for i, p in enumerate(listed)
        if not (p.endswith("/") and i + 1 < len(listed) and listed[i + 1].startswith(p))
    ]


def _find_pattern(path: str) -> str:
    """A literal path as a ``find -path`` pattern (escape the glob characters)."""
    out = []
    for ch in path:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


_FIND_FORMAT = r"%y\0%m\0%s\0%C@\0%i\0%P\0%l\0%n\0"
_FIELDS = 8


class WalkStopped(Exception):
    """``on_dir`` refused a directory."""


class TooManyPaths(Exception):
    """The tree holds more paths than the caller's limit (the scan stopped there)."""


def _run_limited(cmd: list[str], max_fields: int | None) -> tuple[bytes, bytes, int]:
    """Run ``cmd``; stop it once its output holds more than ``max_fields`` NUL bytes."""
    if max_fields is None:
        proc = subprocess.run(cmd, capture_output=True, check=False)
        return proc.stdout, proc.stderr, proc.returncode
    with (
        tempfile.TemporaryFile() as err,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err) as p,
    ):
        assert p.stdout is not None
        chunks, count = [], 0
        while chunk := p.stdout.read(1 << 16):
            chunks.append(chunk)
            count += chunk.count(b"\0")
            if count > max_fields:
                p.kill()
                raise TooManyPaths(f"more than {max_fields // _FIELDS:,} paths")
        rc = p.wait()
        err.seek(0)
        return b"".join(chunks), err.read(), rc


def walk_find(
    root: Path, prune: list[str], max_paths: int | None = None
) -> tuple[dict[str, Record], list[tuple[str, str]]]:
    """List ``root`` with GNU find; ``prune``: relative paths not to descend into or list."""
    cmd: list[str] = ["find", str(root), "-mindepth", "1"]
    if prune:
        cmd.append("(")
        for i, rel in enumerate(prune):
            if i:
                cmd.append("-o")
            cmd += ["-path", _find_pattern(os.path.join(str(root), rel))]
        cmd += [")", "-prune", "-o"]
    cmd += ["-printf", _FIND_FORMAT]
    stdout, stderr, returncode = _run_limited(
        cmd, None if max_paths is None else max_paths * _FIELDS
    )
    # find exits 1 when some directory could not be read; its entries are still listed.
    parts = stdout.decode("utf-8", "surrogateescape").split("\0")
    n = len(parts) - len(parts) % _FIELDS
    kinds = parts[0:n:_FIELDS]
    rels = parts[5:n:_FIELDS]
    records: dict[str, Record] = dict(
        zip(
            rels,
            zip(
                kinds,
                parts[1:n:_FIELDS],
                parts[2:n:_FIELDS],
                parts[3:n:_FIELDS],
                parts[4:n:_FIELDS],
                parts[6:n:_FIELDS],
                parts[7:n:_FIELDS],
                strict=True,
            ),
            strict=True,
        )
    )
    special: list[tuple[str, str]] = []
    if not _KINDS.issuperset(kinds):
        for kind, rel in zip(kinds, rels, strict=True):
            if kind not in _KINDS:
                del records[rel]
                special.append((rel, SPECIAL))
    if returncode != 0:
        for line in stderr.decode(errors="replace").splitlines():
            special.append((line.removeprefix("find: "), "could not be read"))
    return records, special


def _ns_text(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}0"


SPECIAL = "not a regular file, directory or symlink"


def stat_record(st: os.stat_result, path: str) -> Record | None:
    """The record of a path from its ``lstat`` (None: a socket, FIFO or device)."""
    if stat.S_ISDIR(st.st_mode):
        kind = DIR
    elif stat.S_ISREG(st.st_mode):
        kind = FILE
    elif stat.S_ISLNK(st.st_mode):
        kind = LINK
    else:
        return None
    return (
        kind,
        f"{stat.S_IMODE(st.st_mode):o}",
        str(st.st_size),
        _ns_text(st.st_ctime_ns),
        str(st.st_ino),
        os.readlink(path) if kind == LINK else "",
        str(st.st_nlink),
    )


def walk_python(
    root: Path,
    prune: Iterable[str],
    max_paths: int | None = None,
    *,
    start: str = "",
    on_dir: Callable[[str], bool] | None = None,
) -> tuple[dict[str, Record], list[tuple[str, str]]]:
    """The same listing as ``walk_find``, in Python (portable fallback).

    ``start``: list only beneath this directory (paths stay relative to ``root``).
    ``on_dir(rel)`` is called before each directory is listed (``start`` included);
    returning False stops the walk with ``WalkStopped``."""
    skip = {p.rstrip("/") for p in prune}
    records: dict[str, Record] = {}
    special: list[tuple[str, str]] = []
    stack = [start]
    while stack:
        rel_dir = stack.pop()
        if on_dir is not None and not on_dir(rel_dir):
            raise WalkStopped(rel_dir)
        try:
            it = os.scandir(os.path.join(root, rel_dir) if rel_dir else root)
        except OSError as err:
            special.append((rel_dir, f"could not be read ({err.strerror})"))
            continue
        with it:
            for e in it:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                if rel in skip:
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                    rec = stat_record(st, e.path)
                except OSError as err:
                    special.append((rel, f"could not be read ({err.strerror})"))
                    continue
                if max_paths is not None and len(records) >= max_paths:
                    raise TooManyPaths(f"more than {max_paths:,} paths")
                if rec is None:
                    special.append((rel, SPECIAL))
                    continue
                if rec[0] == DIR:
                    stack.append(rel)
                records[rel] = rec
    return records, special


def has_gnu_find() -> bool:
    find = shutil.which("find")
    if find is None:
        return False
    proc = subprocess.run(
        [find, os.devnull, "-maxdepth", "0", "-printf", "%T@"], capture_output=True, check=False
    )
    return proc.returncode == 0 and b"." in proc.stdout


def _is_ignore_file(rel: str) -> bool:
    return rel == ".gitignore" or rel.endswith("/.gitignore") or rel == ".git/info/exclude"


def _ignore_inputs_changed(records: dict[str, Record], previous: ScanResult) -> bool:
    """Could git's answer differ from last time? Only if a path is new (it may match a
    pattern) or an ignore file changed, appeared or went away."""
    before = previous.records
    if len(records) != len(before) or records.keys() - before.keys():
        return True  # new paths (or some went away: checked below)
    changed = records.items() - before.items()
    return any(_is_ignore_file(rel) for rel, _rec in changed) or any(
        _is_ignore_file(rel) for rel in before.keys() - records.keys()
    )


FULL_SCAN_EVERY = 25
"""With a watcher, every this many scans is a full one anyway (what inotify cannot see:
writes through a shared mapping after the file was closed)."""


def scan(
    root: Path,
    *,
    ignore_repo: Path | None,
    skip: list[str] | None = None,
    use_find: bool = True,
    previous: ScanResult | None = None,
    max_paths: int | None = None,
    watcher: TreeWatcher | None = None,
) -> ScanResult:
    """Everything under ``root`` a checkpoint covers, and what it does not (see module doc).

    With ``previous`` (the last scan of the same root), git is asked about ignore rules only
    when a path is new or an ignore file changed; otherwise its last answer still holds.
    With a ``watcher`` too, only the paths it reports (and files with several hard links)
    are looked at again, unless it cannot tell (see :mod:`tmax_local.undo.watch`).
    Raises ``TooManyPaths`` (having stopped early) when there are more than ``max_paths``.
    """
    skip = list(skip or [])
    if (
        watcher is not None
        and previous is not None
        and previous.ignored is not None
        and previous.since_full + 1 < FULL_SCAN_EVERY
    ):
        result = _scan_changes(root, ignore_repo, skip, previous, max_paths, watcher)
        if result is not None:
            return result
    if watcher is not None:
        watcher.changes()  # what happened before this listing is in it: drop those events
        if previous is not None:  # watch the directories we know of before listing them
            watcher.sync(r for r, rec in previous.records.items() if rec[0] == DIR)
    walker = walk_find if use_find else walk_python

    def walk(ignored: list[str] | None) -> tuple[dict[str, Record], list[tuple[str, str]]]:
        dirs = [p.rstrip("/") for p in ignored or [] if p.endswith("/")]
        records, special = walker(root, skip + dirs, max_paths)
        for p in ignored or []:
            if not p.endswith("/"):
                records.pop(p, None)
        return records, special

    if previous is not None and previous.ignored is not None:
        ignored: list[str] | None = previous.ignored
        records, special = walk(ignored)
        git_asked = _ignore_inputs_changed(records, previous) or any(
            not os.path.lexists(os.path.join(root, p.rstrip("/"))) for p in previous.ignored
        )  # an ignored path went away
        if git_asked:
            fresh = ignored_paths(root, ignore_repo)
            if fresh != ignored:
                ignored = fresh
                records, special = walk(ignored)
    else:
        git_asked = True
        ignored = ignored_paths(root, ignore_repo)
        records, special = walk(ignored)
    unsettled: set[str] = set()
    if watcher is not None:
        before = set(watcher.by_dir)
        dirs = [r for r, rec in records.items() if rec[0] == DIR]
        watcher.sync(dirs)
        # Watched only now: what changed in them between the listing and the watch is
        # unknown, so the next scan lists them again (a new root: a full scan).
        new = set(watcher.by_dir) - before
        unsettled = {""} if "" in new else new
    return ScanResult(
        records=records,
        not_covered=[(p, "ignored by .gitignore") for p in ignored or []] + special,
        ignore_rules_applied=ignored is not None,
        ignored=ignored,
        git_asked=git_asked,
        special=special,
        multilink={r for r, rec in records.items() if record_multilink(rec)},
        unsettled=unsettled,
    )


def _restat(root: Path, rel: str) -> Record | None:
    path = os.path.join(root, rel)
    try:
        return stat_record(os.lstat(path), path)
    except OSError:
        return None


def _scan_changes(
    root: Path,
    ignore_repo: Path | None,
    skip: list[str],
    previous: ScanResult,
    max_paths: int | None,
    watcher: TreeWatcher,
) -> ScanResult | None:
    """``previous`` updated with what the watcher reports; None if only a full scan can tell."""
    if "" in previous.unsettled:
        return None
    got = watcher.changes()
    if got is None:
        return None
    paths, new_dirs = got
    new_dirs |= previous.unsettled
    ignored = previous.ignored or []
    ignored_files = {p for p in ignored if not p.endswith("/")}
    pruned = tuple(p.rstrip("/") for p in ignored if p.endswith("/")) + tuple(skip)

    def excluded(rel: str) -> bool:
        return rel in ignored_files or any(rel == p or rel.startswith(p + "/") for p in pruned)

    records = dict(previous.records)
    special = {rel: why for rel, why in previous.special}
    multilink = set(previous.multilink)

    def note(rel: str, rec: Record) -> None:
        records[rel] = rec
        if not record_multilink(rec):
            multilink.discard(rel)
            return
        if rel not in multilink:
            # A new name for an inode: its other names changed (link count, ctime) with
            # no event of their own, and may change through this one from now on.
            ino = rec[4]
            siblings = [r for r, x in records.items() if x[4] == ino and x[0] == FILE]
            multilink.update(siblings)
            for other in siblings:
                fresh = _restat(root, other) if other != rel else None
                if fresh is not None:
                    records[other] = fresh

    touched: list[str] = []
    ignored_touched = False  # an ignored path came or went: git's list may differ
    for rel in sorted(paths | new_dirs | multilink):
        if excluded(rel):
            ignored_touched = True
            continue
        special.pop(rel, None)
        touched.append(rel)
        path = os.path.join(root, rel)
        try:
            rec = stat_record(os.lstat(path), path)
        except (FileNotFoundError, NotADirectoryError):
            old = records.pop(rel, None)
            multilink.discard(rel)
            if old is not None and old[0] == DIR:
                return None  # a subtree went away
            continue
        except OSError as err:
            records.pop(rel, None)
            special[rel] = f"could not be read ({err.strerror})"
            continue
        old = records.get(rel)
        if rec is None:
            records.pop(rel, None)
            special[rel] = SPECIAL
            if old is not None and old[0] == DIR:
                return None
            continue
        if old is not None and old[0] == DIR and rec[0] != DIR:
            return None
        note(rel, rec)
        if rec[0] == DIR and (old is None or rel in new_dirs):
            # A new directory: watch it, then list it (so nothing made in it is missed).
            try:
                sub, sub_special = walk_python(
                    root, pruned, max_paths, start=rel, on_dir=watcher.add
                )
            except WalkStopped:
                return None
            for key, sub_rec in sub.items():
                if key not in ignored_files:
                    note(key, sub_rec)
                    touched.append(key)
            special.update(sub_special)
    if max_paths is not None and len(records) > max_paths:
        raise TooManyPaths(f"more than {max_paths:,} paths")
    rules_touched = any(_is_ignore_file(rel) for rel in touched)
    git_asked = (
        ignored_touched or rules_touched or any(rel not in previous.records for rel in touched)
    )
    if git_asked:
        fresh = ignored_paths(root, ignore_repo)
        if fresh is None:
            return None
        if fresh != ignored:
            dirs_now = {p for p in fresh if p.endswith("/")}
            if rules_touched or dirs_now != {p for p in ignored if p.endswith("/")}:
                return None  # other rules, or a directory newly (un)ignored: list it all
            # only ignored files came or went: what is new among them is not covered
            for name in fresh:
                if not name.endswith("/"):
                    records.pop(name, None)
                    multilink.discard(name)
            ignored = fresh
    special_list = sorted(special.items())
    return ScanResult(
        records=records,
        not_covered=[(p, "ignored by .gitignore") for p in ignored] + special_list,
        ignore_rules_applied=True,
        ignored=ignored,
        git_asked=git_asked,
        special=special_list,
        full=False,
        since_full=previous.since_full + 1,
        multilink=multilink,
    )
