"""`kill -9` of a real `tmax-local` process at different points of a session: during a
command, while an approval waits, during generation (a real tiny model under llama.cpp), and
at random moments. Each time the transcript holds every event up to the kill as JSON lines
(at most a torn last line, which readers skip), no process of the session is left behind,
and `tmax-local --resume` (the real app, in tmux) reopens and continues the session."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tmax_local.agent.transcript import load_records, stream_text


def call(command: str, prose: str = "Next.") -> str:
    return (
        f"{prose}\n<tool_call>\n<function=bash>\n<parameter=command>\n{command}\n"
        "</parameter>\n</function>\n</tool_call>"
    )


SUBMIT = call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "Done.")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TMAX_DATA_DIR": str(tmp_path / "data"),
        "TMAX_CONFIG_DIR": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }


def _sessions(env: dict[str, str]) -> list[Path]:
    d = Path(env["TMAX_DATA_DIR"]) / "sessions"
    return sorted(d.glob("*.jsonl")) if d.is_dir() else []


def _start_run(
    env: dict[str, str], work: Path, model: str, *extra: str, stdin: Any = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tmax_local", "run", "the task", "--model", model,
         "--cwd", str(work), *extra],
        env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


def _wait(pred: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval of a condition wait


def _kinds(env: dict[str, str]) -> list[str]:
    s = _sessions(env)
    return [r["kind"] for r in load_records(s[0])] if s else []


def _kill9(proc: subprocess.Popen[str]) -> list[int]:
    """SIGKILL the app (only it: its children get no signal from us) and return the pids
    of its descendants at that moment."""
    kids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return kids


def _check_transcript(path: Path) -> list[dict[str, Any]]:
    """Every complete line is a JSON record; only the last line may be torn."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    for i, line in enumerate(complete):
        rec = json.loads(line)
        assert isinstance(rec, dict) and "kind" in rec and "t" in rec, (i, line[:200])
    records = load_records(path)
    assert len(records) == len(complete)  # a torn tail (if any) is skipped, nothing else
    if tail:
        with pytest.raises(json.JSONDecodeError):
            json.loads(tail)
    assert records[0]["kind"] == "SessionStarted"
    stream_text(records)  # the resume input can be rebuilt
    return records


def _no_leftovers(pids: list[int]) -> None:
    def gone() -> bool:
        for pid in pids:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                continue
        return True

    _wait(gone, f"the session's processes {pids} to end", timeout=20)


def _resume_in_app(env: dict[str, str], work: Path, session: Path, script: Path) -> None:
    """Reopen ``session`` in the real app (tmux), continue it, and see it finish."""
    from tmax_local.testing.tmux import TmuxSession, tmax_argv

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    keep = ("TMAX_DATA_DIR", "TMAX_CONFIG_DIR", "TERM", "PYTHONPATH")
    tmux = TmuxSession(
        [*tmax_argv(), "--session", str(session), "--model", f"script:{script}",
         "--cwd", str(work), "--mode", "auto"],
        {k: env[k] for k in keep}, work,
    )  # fmt: skip
    try:
        tmux.wait_for(lambda s: "Reopened session" in s, "the reopened session", timeout=90)
        tmux.text("carry on")
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "finished (submitted)" in s, "the continued run", timeout=90)
        tmux.keys("C-q")
        _wait(tmux.pane_dead, "the app to quit", timeout=30)
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.close()
    records = _check_transcript(session)
    assert any(
        r["kind"] == "InstructionAdded"
        or r.get("text") == "carry on"
        or "carry on" in json.dumps(r)
        for r in records
    )
    assert records[-1]["kind"] == "AgentFinished" or any(
        r["kind"] == "AgentFinished" and r["reason"] == "submitted" for r in records
    )


def test_kill9_during_a_command_then_resume(tmp_path, env):
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "s.json"
    script.write_text(json.dumps([call("echo before > a.txt"), call("sleep 41.5"), SUBMIT]))
    proc = _start_run(env, work, f"script:{script}", "--approve", "auto")
    try:
        _wait(lambda: _kinds(env).count("ToolCallProposed") >= 2, "the second command")
        _wait(
            lambda: any(
                "sleep 41.5" in " ".join(p.info["cmdline"] or [])
                for p in psutil.process_iter(["cmdline"])
            ),
            "sleep to run",
        )
        kids = _kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (work / "a.txt").read_text() == "before\n"
    records = _check_transcript(_sessions(env)[0])
    kinds = [r["kind"] for r in records]
    assert kinds.count("CommandExecuted") == 1 and kinds[-1] != "AgentFinished"
    _no_leftovers(kids)  # the sleep went with the shell
    resume = tmp_path / "r.json"
    resume.write_text(json.dumps([SUBMIT]))
    _resume_in_app(env, work, _sessions(env)[0], resume)


def test_kill9_while_an_approval_waits_then_resume(tmp_path, env):
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "s.json"
    script.write_text(json.dumps([call("touch should-not-exist"), SUBMIT]))
    proc = _start_run(env, work, f"script:{script}", "--approve", "ask", stdin=subprocess.PIPE)
    try:
        _wait(lambda: "ApprovalRequested" in _kinds(env), "the approval request")
        kids = _kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    records = _check_transcript(_sessions(env)[0])
    assert records[-1]["kind"] in ("ApprovalRequested", "ToolCallProposed")
    assert not (work / "should-not-exist").exists()
    _no_leftovers(kids)
    resume = tmp_path / "r.json"
    resume.write_text(json.dumps([SUBMIT]))
    _resume_in_app(env, work, _sessions(env)[0], resume)


def test_kill9_during_generation_with_a_real_model(tmp_path, env, tiny_gguf):
    model = tiny_gguf("Q8_0", naming="causal", linear_k_heads=2, linear_v_heads=4)
    work = tmp_path / "work"
    work.mkdir()
    proc = _start_run(
        env,
        work,
        str(model),
        "--approve",
        "never-run",
        "--ctx",
        "4096",
        "--max-new-tokens",
        "3000",
        "--max-steps",
        "2",
        "--threads",
        "2",
    )
    try:
        _wait(lambda: _kinds(env).count("ReasoningDelta") >= 40, "tokens streaming", 240)
        kids = _kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    session = _sessions(env)[0]
    records = _check_transcript(session)
    deltas = [r for r in records if r["kind"] == "ReasoningDelta"]
    assert len(deltas) >= 40 and not any(r["kind"] == "Reply" for r in records)
    _no_leftovers(kids)
    resume = tmp_path / "r.json"
    resume.write_text(json.dumps([SUBMIT]))
    _resume_in_app(env, work, session, resume)


def test_kill9_at_random_moments_keeps_every_event(tmp_path, env):
    seed = int(os.environ.get("TMAX_KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "s.json"
    script.write_text(
        json.dumps(
            [call(f"echo step {i}; sleep 0.{rng.randint(1, 3)}") for i in range(30)] + [SUBMIT]
        )
    )
    for attempt in range(3):
        for f in _sessions(env):
            f.unlink()
        proc = _start_run(env, work, f"script:{script}", "--approve", "auto")
        try:
            _wait(lambda: "SessionStarted" in _kinds(env), "the session to start")
            time.sleep(rng.uniform(0.0, 2.5))
            kids = _kill9(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        records = _check_transcript(_sessions(env)[0])
        # every command that the transcript says ran really ran, in order
        ran = [r["observation"].split("\n")[0] for r in records if r["kind"] == "CommandExecuted"]
        assert ran == [f"step {i}" for i in range(len(ran))], (seed, attempt, ran)
        _no_leftovers(kids)
