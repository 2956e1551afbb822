"""Undo in the app, driven with Pilot: scripted model, real agent loop, real PTY bash, real
checkpoints. Ctrl+Z on a step asks (showing what will change) and restores; a running agent
reads in its next turn that the files were restored."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pilot_support
import pytest

from tmax_local.agent import events as ev
from tmax_local.agent.options import ModelOptions, SessionOptions
from tmax_local.tui.app import TmaxApp, TuiOptions
from tmax_local.tui.reasoning import StepView
from tmax_local.tui.undo import UndoScreen

pytestmark = pytest.mark.usefixtures("private_dirs")
SIZE = (100, 30)


def call(command: str) -> str:
    return pilot_support.call(command, "Next.")


SUBMIT = call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")


def app_for(tmp_path: Path, work: Path, replies: list[str]) -> TmaxApp:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(replies))
    opts = SessionOptions(model=ModelOptions(model=f"script:{script}"), approve="ask", cwd=work)
    return pilot_support.fixed_app(TuiOptions(session=opts))


wait_until = functools.partial(pilot_support.wait_until, timeout=60.0)


def ran(app: TmaxApp, step: int) -> bool:
    return any(isinstance(e, ev.CommandExecuted) and e.step == step for e in app.events_seen)


async def approve(pilot, app: TmaxApp, step: int) -> None:
    await wait_until(
        pilot, lambda: app.approval_bar.active and app.pending_step == step, f"ask {step}"
    )
    await pilot.press("a")
    await wait_until(pilot, lambda: ran(app, step), f"step {step} ran")


async def undo_step(pilot, app: TmaxApp, step: int) -> UndoScreen:
    view = app.reasoning.steps[step]
    view.query_one("CollapsibleTitle").focus()
    await pilot.pause()
    await pilot.press("ctrl+z")
    await wait_until(pilot, lambda: isinstance(app.screen, UndoScreen), "undo dialog")
    screen = app.screen
    assert isinstance(screen, UndoScreen) and screen.step == step
    return screen


def notes(app: TmaxApp) -> str:
    return "\n".join(str(n.render()) for n in app.reasoning.query(".note"))


async def test_undo_a_finished_step_asks_then_restores(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine\n")
    replies = [
        call("mkdir -p d && echo one > d/a.txt"),
        call("echo two >> d/a.txt && chmod 600 d/a.txt && mv keep.txt moved.txt"),
        SUBMIT,
    ]
    app = app_for(tmp_path, work, replies)
    async with app.run_test(size=SIZE) as pilot:
        await pilot_support.start(pilot, "make files", timeout=60.0)
        await approve(pilot, app, 1)
        await approve(pilot, app, 2)
        await wait_until(pilot, lambda: app.finished is not None, "finished")
        assert set(app.checkpoints) == {1, 2}
        assert isinstance(app.reasoning.steps[2], StepView)
        # Asked first: "n" changes nothing.
        screen = await undo_step(pilot, app, 2)
        assert screen.change.modified == ["d/a.txt"] and screen.change.added == ["keep.txt"]
        assert screen.change.deleted == ["moved.txt"]
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, UndoScreen), "closed")
        assert (work / "moved.txt").exists()
        # "y" restores the files as they were before step 2.
        await undo_step(pilot, app, 2)
        await pilot.press("y")
        await wait_until(pilot, lambda: "Restored the project" in notes(app), "restore note")
        await app.workers.wait_for_complete()
        assert (work / "d" / "a.txt").read_text() == "one\n"
        assert (work / "d" / "a.txt").stat().st_mode & 0o777 != 0o600
        assert (work / "keep.txt").read_text() == "mine\n" and not (work / "moved.txt").exists()
        assert "tmax-local restore" in notes(app) and " u1" in notes(app)


async def test_running_agent_is_told_files_were_restored(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    replies = [call("echo one > a.txt"), call("echo two > b.txt"), call("ls"), SUBMIT]
    app = app_for(tmp_path, work, replies)
    async with app.run_test(size=SIZE) as pilot:
        await pilot_support.start(pilot, "make files", timeout=60.0)
        await approve(pilot, app, 1)
        await approve(pilot, app, 2)
        # Step 3 waits for approval: undo step 2 meanwhile.
        await wait_until(pilot, lambda: app.approval_bar.active and app.pending_step == 3, "ask 3")
        await undo_step(pilot, app, 2)
        await pilot.press("y")
        await wait_until(pilot, lambda: "Restored the project" in notes(app), "restore note")
        assert (work / "a.txt").exists() and not (work / "b.txt").exists()
        app.approval_bar.focus()
        await approve(pilot, app, 3)
        await wait_until(pilot, lambda: app.finished is not None, "finished")
        model = app.session.model
        told = [t for t in model.appended if "restored the project's files" in t]
        assert len(told) == 1 and "before step 2" in told[0]
        assert any(isinstance(e, ev.InstructionAdded) for e in app.events_seen)
