"""`tmax-local run` as a user runs it: a subprocess, answers typed on stdin."""

from __future__ import annotations

import json
from pathlib import Path

import cli_support

from tmax_local.agent.parser import bash_reply

SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")


def run_cli(args, env, cwd, stdin=""):
    """`tmax-local run ARGS`."""
    return cli_support.run_cli(["run", *args], env, cwd, stdin, timeout=120)


def write_script(path: Path, replies: list[str]) -> Path:
    path.write_text(json.dumps(replies))
    return path


def test_approve_edit_reject_and_json(tmp_path, env):
    work = tmp_path / "w"
    work.mkdir()
    script = write_script(
        tmp_path / "s.json",
        [
            bash_reply("echo one > a.txt", "First a file."),
            bash_reply("echo two > b.txt"),
            bash_reply("rm a.txt"),
            SUBMIT,
        ],
    )
    answers = "a\ne\necho edited > c.txt\nr\nplease keep a.txt\n"
    out = tmp_path / "t.json"
    p = run_cli(
        ["Make files", "--model", f"script:{script}", "--json", str(out)], env, work, answers
    )
    assert p.returncode == 0, p.stderr
    assert (work / "a.txt").read_text() == "one\n"
    assert not (work / "b.txt").exists() and (work / "c.txt").read_text() == "edited\n"
    assert "First a file." in p.stdout and "$ rm a.txt" in p.stdout
    assert "!! delete" in p.stdout  # risk label shown
    assert "finished: submitted" in p.stdout
    data = json.loads(out.read_text())
    assert data["task"] == "Make files" and data["finished"]["reason"] == "submitted"
    steps = data["steps"]
    assert steps[0]["command"] == "echo one > a.txt" and steps[0]["exit_code"] == 0
    assert steps[1]["command"] == "echo edited > c.txt"
    assert steps[2]["rejected"] and "please keep a.txt" in steps[2]["observation"]
    assert all("stats" in s for s in steps)
    # The session's JSON-lines transcript is in the sessions folder.
    sessions = list((tmp_path / "data" / "sessions").glob("*.jsonl"))
    assert len(sessions) == 1 and data["transcript_path"] == str(sessions[0])


def test_task_file_auto_mode_and_exit_status_when_not_submitted(tmp_path, env):
    work = tmp_path / "w"
    work.mkdir()
    (tmp_path / "task.md").write_text("List files.\n")
    script = write_script(tmp_path / "s.json", [bash_reply("ls"), bash_reply("pwd")])
    p = run_cli(
        [
            "--task-file",
            str(tmp_path / "task.md"),
            "--model",
            f"script:{script}",
            "--approve",
            "auto",
            "--max-steps",
            "2",
        ],
        env,
        work,
    )
    assert p.returncode == 1
    assert "finished: step_limit" in p.stdout and str(work) in p.stdout


def test_always_allow_rule_and_stdin_task(tmp_path, env):
    work = tmp_path / "w"
    work.mkdir()
    script = write_script(
        tmp_path / "s.json", [bash_reply("touch x1"), bash_reply("touch x2"), SUBMIT]
    )
    p = run_cli(["Touch", "--model", f"script:{script}"], env, work, "l\n")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (work / "x1").exists() and (work / "x2").exists()
    assert p.stdout.count("? approve this command") == 1
    p2 = run_cli(
        ["-", "--model", f"script:{script}", "--approve", "never-run"],
        env,
        work,
        "Touch things from stdin",
    )
    assert p2.returncode == 0 and "Dry run" in p2.stdout


def test_offline_without_model_says_what_to_do(tmp_path, env):
    p = run_cli(["hello"], env, tmp_path)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "allenai/tmax-2b" in lines[0] and "tmax-local convert" in lines[0]


def test_bad_inputs_are_one_line_errors(tmp_path, env):
    p = run_cli(["x", "--model", "script:/nonexistent.json"], env, tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "not found" in p.stderr
    p = run_cli([], env, tmp_path)
    assert p.returncode != 0 and "no task given" in p.stderr


def test_runtime_flags_reach_the_agent(tmp_path, env):
    """--timeout and --max-steps (from the shared option group) govern the run."""
    work = tmp_path / "w"
    work.mkdir()
    script = write_script(tmp_path / "s.json", [bash_reply("sleep 60"), bash_reply("pwd")])
    p = run_cli(
        [
            "wait",
            "--model",
            f"script:{script}",
            "--approve",
            "auto",
            "--timeout",
            "1",
            "--max-steps",
            "1",
            "--ctx",
            "8192",
            "--temperature",
            "0.1",
        ],
        env,
        work,
    )
    assert p.returncode == 1, p.stderr
    assert "(exit_code=124)" in p.stdout  # the 1 s command timeout cut `sleep 60`
    assert "finished: step_limit" in p.stdout and "$ pwd" not in p.stdout
