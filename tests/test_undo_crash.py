"""Crash safety with real processes: `tmax-local` killed (SIGKILL) in the middle of a
snapshot or of a restore leaves the project and the shadow store consistent, and the next
run finishes an interrupted restore."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_support import TMAX, isolated_env, run_cli
from undo_support import copy_tree, differences, tree_state

from tmax_local.agent.parser import bash_reply
from tmax_local.undo.restore import leftover_temp_files
from tmax_local.undo.store import Store

SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")


@pytest.fixture
def env(tmp_path):
    return isolated_env(tmp_path, drop_git=True)


def start(args, env, cwd, stdin=""):
    p = subprocess.Popen(
        [*TMAX, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
        text=True,
    )
    assert p.stdin is not None
    p.stdin.write(stdin)
    p.stdin.close()
    return p


def kill_when(p: subprocess.Popen, ready, delay: float, timeout: float = 60) -> bool:
    """SIGKILL the process group ``delay`` s after ``ready()`` holds; False if it ended first."""
    end = time.monotonic() + timeout
    while not ready():
        if p.poll() is not None or time.monotonic() > end:
            return False
        time.sleep(0.001)
    time.sleep(delay)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(10)
    return True


def store_dir(tmp_path: Path) -> Path:
    found = list((tmp_path / "data" / "checkpoints").glob("*/project.json"))
    return found[0].parent if found else tmp_path / "data" / "checkpoints" / "none"


def test_killed_during_snapshot(tmp_path, env):
    work = tmp_path / "w"
    rng = random.Random(3)
    for i in range(500):
        p = work / f"d{i % 16}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(40_000))
    before = copy_tree(work, tmp_path / "before")
    script = tmp_path / "s.json"
    script.write_text(json.dumps([bash_reply("echo hi > new.txt"), SUBMIT]))
    args = ["run", "t", "--model", f"script:{script}", "--approve", "auto"]
    killed_mid = 0
    for delay in (0.0, 0.05, 0.3):

        def writing() -> bool:
            return any((store_dir(tmp_path) / "tmp").glob(".part-*"))

        p = start(args, env, work, "a\n")
        assert kill_when(p, writing, delay), p.stderr.read() if p.stderr else ""
        store = Store.find(work, base=tmp_path / "data" / "checkpoints")
        if store.head() is None:
            killed_mid += 1
        assert store.fsck() == []
        # The project is untouched: the command had not run yet.
        assert differences(tree_state(work), tree_state(before)) == []
    assert killed_mid >= 1  # the kills did land in the middle of a snapshot
    # The next run works, and its checkpoint restores the project.
    done = run_cli(args, env, work, "a\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "new.txt").exists()
    r = run_cli(["restore", "1", "--yes"], env, work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert differences(tree_state(work), tree_state(before)) == []
    assert not list((store_dir(tmp_path) / "tmp").glob(".part-*"))


def test_killed_during_restore(tmp_path, env):
    work = tmp_path / "w"
    for i in range(1200):
        p = work / f"d{i % 30}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"original {i}\n" * 20)
    s0 = tree_state(work)
    script = tmp_path / "s.json"
    script.write_text(
        json.dumps(
            [
                bash_reply('for f in d*/f*.txt; do echo "changed" > "$f"; done; rm -r d7'),
                SUBMIT,
            ]
        )
    )
    done = run_cli(
        ["run", "t", "--model", f"script:{script}", "--approve", "auto"], env, work, "a\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    s1 = tree_state(work)
    journal = store_dir(tmp_path) / "restore.json"
    p = start(["restore", "1", "--yes"], env, work)
    assert kill_when(p, journal.exists, 0.01)
    assert journal.exists()  # killed in the middle of the restore
    # Every path is either its old or its new version, never a torn mix.
    now = tree_state(work)
    for path, value in now.items():
        if Path(path).name.startswith(".tmax-restore-"):
            continue
        assert value in (s0.get(path), s1.get(path)), path
    store = Store.find(work, base=tmp_path / "data" / "checkpoints")
    assert store.fsck() == []
    # Listing is read-only and works; the next restore finishes the interrupted one first.
    assert run_cli(["checkpoints"], env, work).returncode == 0
    r = run_cli(["restore", "1", "--yes"], env, work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to change" in r.stdout
    assert differences(tree_state(work), s0) == []
    assert leftover_temp_files(work) == [] and not journal.exists()
    # The interrupted restore was undoable all along: u1 is the state before it.
    r = run_cli(["restore", "u1", "--yes"], env, work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert differences(tree_state(work), s1) == []
