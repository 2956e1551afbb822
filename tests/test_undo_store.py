"""The shadow store and restore, on real directories (no agent)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from undo_support import differences, tree_state

from tmax_local.undo import restore as rs
from tmax_local.undo.scan import walk_find, walk_python
from tmax_local.undo.store import Store, diff_trees


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@x",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@x",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "deep" / "er").mkdir(parents=True)
    (root / "src" / "a.py").write_text("print('a')\n")
    (root / "src" / "deep" / "er" / "b.bin").write_bytes(bytes(range(256)) * 10)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "secret.txt").write_text("s")
    os.chmod(root / "secret.txt", 0o600)
    (root / "empty").mkdir()
    os.symlink("src/a.py", root / "link")
    os.symlink("missing", root / "dangling")
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_text("obj")
    (root / "x.log").write_text("log")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    return root


@pytest.fixture
def store(tmp_path: Path, project: Path) -> Store:
    return Store.open(project, base=tmp_path / "store")


def test_find_and_python_walkers_agree(project: Path):
    a, sa = walk_find(project, ["build"])
    b, sb = walk_python(project, ["build"])
    assert a == b and sa == sb == []
    assert "build/out.o" not in a and "empty" in a and a["link"][5] == "src/a.py"
    assert a["secret.txt"][1] == "600" and a["run.sh"][1] == "755"


def test_snapshot_covers_tree_and_lists_what_it_does_not(store: Store):
    tree = store.snapshot()
    assert tree.entries["secret.txt"].mode == 0o600 and tree.entries["run.sh"].mode == 0o755
    assert tree.entries["empty"].kind == "d" and tree.entries["dangling"].data == "missing"
    assert ".git/HEAD" in tree.entries and ".git/index" in tree.entries
    assert "build/out.o" not in tree.entries and "x.log" not in tree.entries
    reasons = dict(tree.not_covered)
    assert reasons["build/"] == reasons["x.log"] == "ignored by .gitignore"
    # Nothing changed: the same tree, and no file content is read again.
    again = store.snapshot()
    assert again.id == tree.id


def test_size_limit_is_listed(tmp_path: Path, project: Path):
    (project / "big.dat").write_bytes(b"x" * 5000)
    s = Store.open(project, base=tmp_path / "store", max_file_bytes=4096)
    tree = s.snapshot()
    assert "big.dat" not in tree.entries
    assert any(p == "big.dat" and "limit" in why for p, why in tree.not_covered)


def test_limits_on_new_content_and_on_paths(tmp_path: Path, project: Path):
    from tmax_local.undo.store import ProjectTooLarge

    s = Store.open(project, base=tmp_path / "store", max_new_bytes=100)
    tree = s.snapshot()  # only the first files fit the budget; the rest are listed
    budget = [p for p, why in tree.not_covered if "budget" in why]
    assert budget and all(p not in tree.entries for p in budget)
    s.max_new_bytes = 10**9
    tree = s.snapshot()  # the next checkpoint takes them
    assert all(p in tree.entries for p in budget)
    s.max_paths = 5
    with pytest.raises(ProjectTooLarge, match="too many to checkpoint"):
        s.snapshot()
    s.use_find = False  # the portable walker stops early too
    with pytest.raises(ProjectTooLarge):
        s.snapshot()


def test_unchanged_files_are_not_read_again(store: Store, project: Path, monkeypatch):
    import time

    store.snapshot()
    time.sleep(0.2)  # past the racy window: files read just after a change are read again
    store.snapshot()
    opened: list[str] = []
    real = store.store_file
    monkeypatch.setattr(store, "store_file", lambda p: (opened.append(str(p)), real(p))[1])
    store.snapshot()
    assert opened == []
    (project / "src" / "a.py").write_text("changed\n")
    store.snapshot()
    assert opened == [str(project / "src" / "a.py")]
    # A new process (no tree in memory) trusts the stat fields kept on disk.
    time.sleep(0.2)
    store.snapshot()
    store.flush_index()
    opened.clear()
    fresh = Store.open(project, base=store.path.parent)
    monkeypatch.setattr(fresh, "store_file", lambda p: (opened.append(str(p)), real(p))[1])
    fresh.snapshot()
    assert opened == []


def test_restore_reproduces_bytes_modes_tree_and_git_state(store: Store, project: Path, tmp_path):
    t0 = store.snapshot()
    copy0 = tree_state(project)
    # Mutate everything: content, modes, delete, rename, new nested dirs, symlinks, git state.
    (project / "src" / "a.py").write_text("print('changed')\n")
    os.chmod(project / "secret.txt", 0o644)
    os.chmod(project / "run.sh", 0o600)
    (project / "src" / "deep" / "er" / "b.bin").unlink()
    os.rename(project / "link", project / "link2")
    os.rmdir(project / "empty")
    (project / "new" / "nested").mkdir(parents=True)
    (project / "new" / "nested" / "f.txt").write_text("new")
    os.chmod(project / "new", 0o500)
    (project / "x.log").write_text("log changed (ignored)")
    git(project, "checkout", "-q", "-b", "feature")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "two")
    git(project, "stash", "list")
    r = rs.restore(store, t0.id, session="s1", label="u1")
    assert r.left_different == []
    now = tree_state(project)
    # The ignored file is not covered: left as it is now.
    assert now.pop("x.log")[2] == b"log changed (ignored)"
    copy0.pop("x.log")
    assert differences(now, copy0) == []
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(project, "status", "--porcelain") == ""
    # The restore is itself undoable.
    r2 = rs.restore(store, r.before.id)
    assert r2.left_different == []
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD").strip() == "feature"
    assert (project / "new" / "nested" / "f.txt").read_text() == "new"
    assert store.fsck() == []


def test_restore_never_writes_through_a_symlink(store: Store, project: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    t0 = store.snapshot()
    # Replace a real directory by a symlink to a directory outside the project.
    import shutil

    shutil.rmtree(project / "src")
    os.symlink(outside, project / "src")
    rs.restore(store, t0.id)
    assert list(outside.iterdir()) == []
    assert (project / "src").is_dir() and not (project / "src").is_symlink()
    assert (project / "src" / "a.py").read_text() == "print('a')\n"


def test_kept_paths_that_were_not_covered(store: Store, project: Path):
    t0 = store.snapshot()
    (project / "build" / "more.o").write_text("x")  # ignored: not ours to delete
    (project / "added.txt").write_text("x")  # covered now, absent then: removed
    r = rs.restore(store, t0.id)
    assert (project / "build" / "more.o").exists() and not (project / "added.txt").exists()
    assert r.change.deleted == ["added.txt"]


def test_diff_summary(store: Store, project: Path):
    t0 = store.snapshot()
    (project / "n.txt").write_text("n")
    (project / "src" / "a.py").write_text("m")
    (project / "secret.txt").unlink()
    t1 = store.snapshot()
    c = diff_trees(t0, t1)
    assert c.added == ["n.txt"] and c.deleted == ["secret.txt"]
    assert "src/a.py" in c.modified
    assert c.summary().startswith("1 added")


def test_trees_are_stored_as_small_deltas(store: Store, project: Path):
    t0 = store.snapshot()
    for i in range(40):
        (project / "src" / "a.py").write_text(f"v{i}")
        store.snapshot()
    t1 = store.snapshot()
    sizes = sorted(p.stat().st_size for p in (store.path / "trees").glob("*.json"))
    assert sizes[-1] > 5 * sizes[0]  # whole trees are rare, deltas small
    fresh = Store.open(project, base=store.path.parent)
    assert fresh.read_tree(t1.id).entries == t1.entries
    assert fresh.read_tree(t0.id).entries == t0.entries
    assert fresh.read_tree(t1.id).depth <= 32


def test_git_is_asked_about_ignores_only_when_they_can_change(store: Store, project: Path):
    store.snapshot()
    (project / "src" / "a.py").write_text("edited")  # no new path: the last answer holds
    store.snapshot()
    assert store._scan is not None and not store._scan.git_asked
    (project / "new.log").write_text("new path, ignored")
    t = store.snapshot()
    assert store._scan.git_asked and "new.log" not in t.entries
    (project / ".gitignore").write_text("*.log\n")  # build/ is no longer ignored
    t = store.snapshot()
    assert store._scan.git_asked and "build/out.o" in t.entries and "x.log" not in t.entries


def test_odd_names_and_special_files(store: Store, project: Path):
    odd = os.fsdecode(b"bad-\xff-name")
    (project / odd).write_text("latin")
    (project / "new\nline.txt").write_text("nl")
    os.mkfifo(project / "pipe")
    t0 = store.snapshot()
    assert odd in t0.entries and "new\nline.txt" in t0.entries
    assert ("pipe", "not a regular file, directory or symlink") in t0.not_covered
    before = tree_state(project)
    (project / odd).unlink()
    (project / "new\nline.txt").write_text("changed")
    r = rs.restore(store, t0.id)
    assert r.left_different == []
    assert differences(tree_state(project), before) == []
    assert (project / "pipe").exists()  # not covered: left alone
