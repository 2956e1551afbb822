"""Checkpoints that stat only what inotify reports must see exactly what a full scan sees.

Differential: after every operation of a random sequence (files, directories, renames,
modes, symlinks, hard links written from outside the project, ignored paths, .gitignore
edits), the watcher-driven scan's records and not-covered list equal a fresh full scan's.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from tmax_local.undo import watch
from tmax_local.undo.scan import ScanResult, ensure_ignore_repo, scan
from tmax_local.undo.store import Store

pytestmark = pytest.mark.skipif(not watch.usable("/tmp"), reason="no inotify on this filesystem")


def _full(root: Path, repo: Path) -> ScanResult:
    return scan(root, ignore_repo=repo)


def _same(fast: ScanResult, full: ScanResult, what: str) -> None:
    assert fast.records == full.records, (what, fast.records.keys() ^ full.records.keys())
    assert sorted(fast.not_covered) == sorted(full.not_covered), what


@pytest.fixture
def world(tmp_path: Path):
    root = tmp_path / "project"
    root.mkdir()
    (root / ".gitignore").write_text("build/\n*.o\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "ignore.git"
    if shutil.which("git") is None or not ensure_ignore_repo(repo):
        pytest.skip("git missing")
    w = watch.TreeWatcher(str(root))
    yield root, outside, repo, w
    w.close()


OPS = [
    *("create", "append", "overwrite", "delete", "rename", "chmod", "mkdir", "rmdir"),
    *("symlink", "hardlink", "outside_write", "ignored", "gitignore", "move_dir"),
    *("new_tree", "noop"),
]


@pytest.mark.parametrize("seed", [5, 14, 21])
def test_random_operations_match_a_full_scan(world, seed: int) -> None:
    root, outside, repo, w = world
    rng = random.Random(seed)
    for i in range(3):  # names outside the project for files inside (known before watching)
        (root / f"shared{i}").write_text("shared\n")
        os.link(root / f"shared{i}", outside / f"alias{i}")
    prev = scan(root, ignore_repo=repo, watcher=w)
    prev = scan(root, ignore_repo=repo, watcher=w, previous=prev)  # settles the root watch
    fast_scans = 0

    def files() -> list[Path]:
        return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]

    def dirs() -> list[Path]:  # ignored ones too: a directory of ignored files can be
        # moved, filled or emptied (git then lists it, or not, as one ignored directory)
        return [p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()]

    for step in range(160):
        op = rng.choice(OPS)
        fs, ds = files(), dirs()
        n = step + 1
        if op == "create" or not fs:
            d = rng.choice([root, *ds])
            (d / f"f{n}.txt").write_text(f"{n}\n")
        elif op == "append":
            with rng.choice(fs).open("a") as fh:
                fh.write("more\n")
        elif op == "overwrite":  # same size, same content length
            p = rng.choice(fs)
            p.write_bytes(bytes(len(p.read_bytes())))
        elif op == "delete":
            rng.choice(fs).unlink()
        elif op == "rename":
            p = rng.choice(fs)
            p.rename(rng.choice([root, *ds]) / f"r{n}.txt")
        elif op == "chmod":
            os.chmod(rng.choice(fs), rng.choice([0o600, 0o755, 0o644]))
        elif op == "mkdir":
            (rng.choice([root, *ds]) / f"d{n}").mkdir()
        elif op == "rmdir" and ds:
            shutil.rmtree(rng.choice(ds))
        elif op == "symlink":
            os.symlink(f"target{n}", rng.choice([root, *ds]) / f"l{n}")
        elif op == "hardlink":  # a second name inside the project
            os.link(rng.choice(fs), rng.choice([root, *ds]) / f"h{n}")
        elif op == "outside_write":  # through a name no watch sees
            with rng.choice(list(outside.iterdir())).open("a") as fh:
                fh.write("via the other name\n")
        elif op == "ignored":
            (root / "build").mkdir(exist_ok=True)
            (root / "build" / f"x{n}.o").write_text("o")
            (root / f"y{n}.o").write_text("o")
        elif op == "gitignore":
            with (root / ".gitignore").open("a") as fh:
                fh.write(f"r{rng.randrange(n)}.txt\n")
        elif op == "move_dir" and ds:
            d = rng.choice(ds)
            if (root / f"m{n}").resolve() != d:
                d.rename(root / f"m{n}")
        elif op == "new_tree":  # a deep new directory filled at once
            base = rng.choice([root, *ds]) / f"t{n}" / "a" / "b"
            base.mkdir(parents=True)
            for i in range(3):
                (base / f"g{i}").write_text(str(i))
        fast = scan(root, ignore_repo=repo, watcher=w, previous=prev)
        fast_scans += not fast.full
        _same(fast, _full(root, repo), f"step {step}: {op}")
        prev = fast
    # the fast path did the work most of the time (directory deletes/moves and ignore-rule
    # changes fall back to full scans, and every 25th scan is full)
    assert fast_scans > 80, fast_scans


def test_a_file_written_through_an_outside_hard_link_is_seen(world) -> None:
    root, outside, repo, w = world
    (root / "data").write_text("v1\n")
    os.link(root / "data", outside / "alias")
    prev = scan(root, ignore_repo=repo, watcher=w)
    prev = scan(root, ignore_repo=repo, watcher=w, previous=prev)
    with (outside / "alias").open("a") as fh:
        fh.write("changed where no watch sees it\n")
    fast = scan(root, ignore_repo=repo, watcher=w, previous=prev)
    assert not fast.full and fast.records["data"][2] == str(len("v1\n") + 31)
    _same(fast, _full(root, repo), "hard link")


def test_a_broken_watcher_means_a_full_scan(world) -> None:
    root, _outside, repo, w = world
    prev = scan(root, ignore_repo=repo, watcher=w)
    prev = scan(root, ignore_repo=repo, watcher=w, previous=prev)
    w.broken = True  # e.g. the kernel refused a watch (the user's limit)
    (root / "new").write_text("x")
    again = scan(root, ignore_repo=repo, watcher=w, previous=prev)
    assert again.full and "new" in again.records
    nxt = scan(root, ignore_repo=repo, watcher=w, previous=again)
    assert not nxt.full  # the full scan re-armed every watch


def test_store_checkpoints_use_the_watcher(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("1")
    store = Store.open(root, base=tmp_path / "store")
    try:
        store.snapshot()
        store.snapshot()
        (root / "a" / "b" / "f").write_text("22")
        tree = store.snapshot()
        assert store._scan is not None and not store._scan.full
        assert tree.entries["a/b/f"].size == 2
    finally:
        store.close()


def test_mountinfo_paths_and_filesystem_types(tmp_path: Path, monkeypatch) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:40 / /home/u/my\\040project/remote rw - nfs4 srv:/x rw\n"
        "41 22 0:41 / /mnt/other rw - fuse.sshfs u@h: rw\n"
    )
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda f, *a, **k: real_open(info if f == "/proc/self/mountinfo" else f, *a, **k),
    )
    monkeypatch.setattr(watch.os.path, "realpath", lambda p: p)
    assert watch.filesystems_under("/home/u/my project") == {"ext4", "nfs4"}
    assert watch.filesystems_under("/home/u") == {"ext4", "nfs4"}
    assert watch.filesystems_under("/srv") == {"ext4"}
    assert not watch.usable("/home/u/my project") and watch.usable("/srv")


@pytest.mark.parametrize("watched", [False, True])
def test_a_file_made_in_a_directory_of_ignored_files_is_covered(world, watched: bool) -> None:
    """git lists a directory whose every entry is ignored as one ignored directory; a file
    made in it later is not ignored and must be in the next checkpoint."""
    root, _outside, repo, w = world
    (root / "objs" / "deeper").mkdir(parents=True)
    (root / "objs" / "a.o").write_text("o")
    (root / "objs" / "deeper" / "b.o").write_text("o")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("ignored by a rule of its own")
    watcher = w if watched else None
    prev = scan(root, ignore_repo=repo, watcher=watcher)
    prev = scan(root, ignore_repo=repo, watcher=watcher, previous=prev)
    assert ("build/", "ignored by .gitignore") in prev.not_covered
    assert ("objs/a.o", "ignored by .gitignore") in prev.not_covered
    (root / "objs" / "deeper" / "source.c").write_text("int main;")
    now = scan(root, ignore_repo=repo, watcher=watcher, previous=prev)
    assert "objs/deeper/source.c" in now.records and "objs/a.o" not in now.records
    _same(now, _full(root, repo), "new file among ignored ones")
