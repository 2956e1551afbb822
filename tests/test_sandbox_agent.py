"""The sandbox seen through the real agent loop: scripted model, real sandboxed PtyShell,
real gate.  The model is told which access was denied; the user can let one command
run outside the sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tmax_local.agent import events as ev
from tmax_local.agent.loop import Agent
from tmax_local.agent.parser import bash_reply
from tmax_local.agent.scripted import ScriptedModel
from tmax_local.approval import Approve, Gate, RunUnsandboxed
from tmax_local.shell import PtyShell
from tmax_local.shell import sandbox as sb

pytestmark = pytest.mark.skipif(sb.detect().mechanism != "landlock", reason="needs Landlock")
SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "Done.")


def _agent(tmp_path: Path, replies: list[str], mode: str, approver=None):
    project = tmp_path / "project"
    project.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}
    shell = PtyShell(project, timeout=20, env=env, sandbox_mode="workspace").start()
    agent = Agent(ScriptedModel(replies), shell, Gate(mode, cwd=project), approver=approver)
    seen: list[ev.AgentEvent] = []
    agent.subscribe(seen.append)
    return agent, shell, seen


def test_denial_reaches_the_model_and_the_session_goes_on(tmp_path: Path) -> None:
    replies = [bash_reply("echo hi > ../outside.txt"), bash_reply("echo hi > inside.txt"), SUBMIT]
    # auto mode asks about writes outside the project: a wrong "yes" is what the
    # sandbox is for, so every question is answered with Approve.
    agent, shell, seen = _agent(tmp_path, replies, "auto", approver=lambda request: Approve())
    try:
        done = agent.run("write a file")
    finally:
        shell.close()
    assert done.reason == "submitted"
    first, second = [e for e in seen if isinstance(e, ev.CommandExecuted)]
    assert first.observation.startswith("bash: ../outside.txt: Permission denied\n")
    assert (
        f"[sandbox] write to {tmp_path / 'outside.txt'} denied (workspace mode: writes allowed"
        f" only under {tmp_path / 'project'} and $TMPDIR)"
    ) in first.observation
    assert not (tmp_path / "outside.txt").exists()
    assert second.observation.endswith("(exit_code=0)")
    assert (tmp_path / "project" / "inside.txt").read_text() == "hi\n"


def test_user_runs_one_command_unsandboxed(tmp_path: Path) -> None:
    answers = iter([RunUnsandboxed(), Approve()])
    replies = [
        bash_reply("export GREETING=hello; echo $GREETING > ../a.txt"),
        bash_reply("echo $GREETING > ../b.txt"),
        SUBMIT,
    ]
    agent, shell, seen = _agent(tmp_path, replies, "ask", approver=lambda request: next(answers))
    try:
        agent.run("write files outside")
    finally:
        shell.close()
    first, second = [e for e in seen if isinstance(e, ev.CommandExecuted)]
    assert (tmp_path / "a.txt").read_text() == "hello\n"
    assert "ran outside the sandbox" in first.observation
    assert not (tmp_path / "b.txt").exists()  # approved normally: sandboxed again
    assert "[sandbox] write to" in second.observation
