"""Undo as a user meets it: `tmax-local run` (scripted model, real PTY shell) records a
checkpoint before every command; `tmax-local checkpoints` lists them; `tmax-local restore`
puts back the exact bytes, modes, tree and the user's own `.git` of the moment before any
step (compared with a copy the session itself took at that moment)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from cli_support import isolated_env, run_cli
from undo_support import differences, tree_state

from tmax_local.agent.parser import bash_reply

SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")


@pytest.fixture
def env(tmp_path):
    return isolated_env(
        tmp_path,
        drop_git=True,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@x",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@x",
        GIT_CONFIG_GLOBAL=os.devnull,
    )


def git(cwd, env, *args):
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout


# Each step first copies the project (outside it) — the checkpoint was taken just before,
# so the copy is the state "before step N" — and then changes it.
STEPS = [
    "mkdir -p a/b/c && printf 'one\\n' > a/b/c/f.txt && echo base > keep.txt && mkdir empty",
    "echo more >> keep.txt && chmod 600 keep.txt && ln -s a/b/c/f.txt lnk && ln -s nowhere dangling",
    (
        "mv keep.txt renamed.txt && rm a/b/c/f.txt && echo x > ignored.log && "
        "printf '\\000\\001bin\\377' > bin.dat && chmod 755 bin.dat && chmod 700 a/b"
    ),
    "git add -A && git commit -qm step4 && git checkout -q -b feature && echo f > feat.txt",
    (
        "echo s > stash_me.txt && git add stash_me.txt && git stash -q && rm -rf a empty && "
        "git commit -q --allow-empty -m empty && echo changed > ignored.log"
    ),
]


def test_scripted_session_restores_every_step_exactly(tmp_path, env):
    work = tmp_path / "proj"
    work.mkdir()
    git(work, env, "init", "-q", "-b", "main")
    git(work, env, "config", "user.name", "t")  # the agent's shell does not pass GIT_* on
    git(work, env, "config", "user.email", "t@x")
    (work / ".gitignore").write_text("*.log\n")
    (work / "README").write_text("hello\n")
    git(work, env, "add", "-A")
    git(work, env, "commit", "-qm", "init")
    copies = tmp_path / "copies"
    copies.mkdir()
    replies = [
        bash_reply(f"cp -a . {copies}/before-{n} && {cmd}") for n, cmd in enumerate(STEPS, 1)
    ] + [SUBMIT]
    script = tmp_path / "s.json"
    script.write_text(json.dumps(replies))
    out = tmp_path / "t.json"
    p = run_cli(
        ["run", "Do things", "--model", f"script:{script}", "--json", str(out)],
        env,
        work,
        "a\n" * 20,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(exit_code=0)" in p.stdout and "(exit_code=1)" not in p.stdout
    assert "ignored.log (ignored by .gitignore)" in p.stdout  # listed, never silently
    final = tree_state(work)
    data = json.loads(out.read_text())
    session = data["session_id"]
    assert [s["exit_code"] for s in data["steps"][:5]] == [0] * 5, p.stdout
    ids = [s.get("checkpoint") for s in data["steps"]]
    assert all(ids[:5]) and len(set(ids[:5])) == 5

    listing = run_cli(["checkpoints"], env, work)
    assert listing.returncode == 0, listing.stderr
    assert session in listing.stdout
    for n, cp in enumerate(ids[:5], 1):
        assert f"{n}  " in listing.stdout and cp[:10] in listing.stdout
    assert "$ cp -a" not in listing.stdout and "cp -a . " in listing.stdout
    assert "added" in listing.stdout

    def comparable(state):  # the .gitignored file is not covered: restore leaves it alone
        return {k: v for k, v in state.items() if not k.endswith(".log")}

    for n in (3, 5, 1, 4, 2):
        dry = run_cli(["restore", str(n), "--dry-run"], env, work)
        assert dry.returncode == 0 and "restore " in dry.stdout, dry.stderr
        r = run_cli(["restore", session, str(n), "--yes"], env, work)
        assert r.returncode == 0, r.stdout + r.stderr
        expected = tree_state(copies / f"before-{n}")
        assert differences(comparable(tree_state(work)), comparable(expected)) == [], n
    # The user's repository as it was before step 4: branch, commits, index, stash.
    assert git(work, env, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(work, env, "log", "--format=%s").split() == ["init"]
    assert git(work, env, "stash", "list") == ""

    # Every restore is undoable: u5 is the state just before the 5th restore, i.e. after
    # the 4th restore (to before step 4); u1 is the state when the session ended.
    r = run_cli(["restore", "u1", "--yes"], env, work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert differences(comparable(tree_state(work)), comparable(final)) == []
    assert git(work, env, "stash", "list").count("stash@") == 1
    assert git(work, env, "rev-parse", "--abbrev-ref", "HEAD").strip() == "feature"
    listing = run_cli(["checkpoints", "--files"], env, work)
    assert "u6" in listing.stdout and "before restoring to u1" in listing.stdout


def test_no_checkpoints_flag_and_confirmation(tmp_path, env):
    work = tmp_path / "w"
    work.mkdir()
    script = tmp_path / "s.json"
    script.write_text(json.dumps([bash_reply("echo one > a.txt"), SUBMIT]))
    p = run_cli(
        ["run", "x", "--model", f"script:{script}", "--no-checkpoints"], env, work, "a\n" * 3
    )
    assert p.returncode == 0, p.stderr
    r = run_cli(["checkpoints"], env, work)
    assert r.returncode == 1 and "no checkpoints recorded" in r.stderr
    assert "Traceback" not in r.stderr

    (work / "a.txt").unlink()
    p = run_cli(["run", "x", "--model", f"script:{script}"], env, work, "a\n" * 3)
    assert p.returncode == 0 and "tmax-local restore" in p.stdout
    assert (work / "a.txt").read_text() == "one\n"
    (work / "a.txt").write_text("mine\n")
    r = run_cli(["restore", "1"], env, work, "n\n")  # asked, answered no
    assert r.returncode == 1 and "restore? [y/N]" in r.stdout and "not restored" in r.stderr
    assert (work / "a.txt").read_text() == "mine\n"
    r = run_cli(["restore", "1"], env, work, "y\n")
    assert r.returncode == 0 and "- a.txt" in r.stdout
    assert not (work / "a.txt").exists()
    r = run_cli(["restore", "7", "--yes"], env, work)
    assert r.returncode == 1 and "has no checkpoint '7'" in r.stderr
