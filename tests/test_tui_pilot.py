"""The real app, driven with Pilot: scripted model, real agent loop, real PTY bash.

Every test waits on a condition (a widget state, a file, an event), never on a sleep.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from pilot_support import call, fixed_app, start, wait_until

from tmax_local.agent import events as ev
from tmax_local.agent.options import ModelOptions, SessionOptions
from tmax_local.agent.resolve import ModelNeedsFetch
from tmax_local.agent.transcript import load_records
from tmax_local.approval.policy import Mode
from tmax_local.tui.app import TmaxApp, TuiOptions
from tmax_local.tui.screens import EditCommandScreen, ReasonScreen, RuleScreen

pytestmark = pytest.mark.usefixtures("private_dirs")
SIZE = (100, 30)


SUBMIT = call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "The task is done.")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def options(
    tmp_path: Path,
    workdir: Path,
    replies: list[str],
    *,
    approve: Mode = "ask",
    ctx: int | None = None,
    scripted: bool = True,
    **kw,
) -> TuiOptions:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(replies))
    model = ModelOptions(model=f"script:{script}" if scripted else None)
    if ctx is not None:
        model = replace(model, ctx=ctx)
    return TuiOptions(session=SessionOptions(model=model, approve=approve, cwd=workdir), **kw)


async def wait_approval(pilot, app: TmaxApp) -> None:
    await wait_until(pilot, lambda: app.approval_bar.active, "approval bar")


async def wait_finished(pilot, app: TmaxApp) -> ev.AgentFinished:
    await wait_until(pilot, lambda: app.finished is not None, "agent finished")
    await app.workers.wait_for_complete()
    assert app.finished is not None
    return app.finished


def kinds(app: TmaxApp, kind: type) -> list:
    return [e for e in app.events_seen if isinstance(e, kind)]


async def test_approve_runs_the_command_in_the_pty(tmp_path, workdir) -> None:
    # A reply with two tool calls: only the first may run, and the bar says so.
    reply = call("echo made > made.txt && ls") + "\n" + call("touch second.txt", "")
    app = fixed_app(options(tmp_path, workdir, [reply, SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "make a file")
        await wait_approval(pilot, app)
        assert app.approval_bar.view.command == "echo made > made.txt && ls"
        assert app.approval_bar.view.ignored == ["touch second.txt"]
        assert not (workdir / "made.txt").exists()  # nothing runs while the bar waits
        await pilot.press("a")
        done = await wait_finished(pilot, app)
        assert done.reason == "submitted"
        assert (workdir / "made.txt").read_text() == "made\n"
        assert not (workdir / "second.txt").exists()
        await wait_until(pilot, lambda: "made.txt" in app.terminal.text(), "ls output on screen")
        step = app.reasoning.steps[1]
        assert step.command == "echo made > made.txt && ls" and "exit 0" in step.outcome
        records = load_records(app.session.transcript_path)
        executed = [r for r in records if r["kind"] == "CommandExecuted"]
        assert [r["command"] for r in executed] == ["echo made > made.txt && ls"]


async def test_edit_runs_what_was_approved(tmp_path, workdir) -> None:
    app = fixed_app(options(tmp_path, workdir, [call("echo a > original.txt"), SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "make a file")
        await wait_approval(pilot, app)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EditCommandScreen), "editor")
        editor = app.screen.query_one("TextArea")
        assert editor.text == "echo a > original.txt"  # pre-filled
        editor.text = "echo b > edited.txt"
        await pilot.press("ctrl+s")
        await wait_finished(pilot, app)
        assert (workdir / "edited.txt").read_text() == "b\n"
        assert not (workdir / "original.txt").exists()
        executed = kinds(app, ev.CommandExecuted)
        assert [e.command for e in executed] == ["echo b > edited.txt"]


async def test_reject_with_reason_goes_back_to_the_model(tmp_path, workdir) -> None:
    app = fixed_app(options(tmp_path, workdir, [call("rm -rf ./data"), SUBMIT]))
    (workdir / "data").mkdir()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "clean up")
        await wait_approval(pilot, app)
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ReasonScreen), "reason box")
        await pilot.press(*"keep the data")
        await pilot.press("enter")
        await wait_finished(pilot, app)
        assert (workdir / "data").is_dir()
        rejected = kinds(app, ev.CommandRejected)
        assert len(rejected) == 1 and "keep the data" in rejected[0].observation
        model = app.session.model
        assert "keep the data" in model.appended[1]  # the model read the reason
        assert "rejected" in app.reasoning.steps[1].outcome


async def test_always_allow_shows_the_rule_and_stops_asking(tmp_path, workdir) -> None:
    replies = [call("touch one.txt"), call("touch two.txt"), SUBMIT]
    app = fixed_app(options(tmp_path, workdir, replies))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "touch files")
        await wait_approval(pilot, app)
        suggested = app.approval_bar.view.rules
        assert suggested == ["touch *"] or suggested, suggested
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, RuleScreen), "rule dialog")
        assert app.screen.query_one("#rule-0").value == suggested[0]  # shown before saving
        assert "touch one.txt" in str(app.screen.query_one("#preview-0").render())
        await pilot.press("enter")
        await wait_finished(pilot, app)
        assert (workdir / "one.txt").exists() and (workdir / "two.txt").exists()
        assert len(kinds(app, ev.ApprovalRequested)) == 1  # the second was allowed by rule


async def test_take_over_typing_answers_a_prompt(tmp_path, workdir) -> None:
    command = 'read -p "name? " NAME; echo "hello $NAME" > greeting.txt'
    app = fixed_app(options(tmp_path, workdir, [call(command), SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "greet")
        await wait_approval(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: "name?" in app.terminal.text(), "prompt on screen")
        title = app.query_one("#term-title")
        await wait_until(pilot, lambda: "waiting for input" in str(title.render()), "the hint")
        await pilot.press("ctrl+t")
        assert app.terminal.takeover
        await pilot.press("b", "o", "b", "enter")
        await wait_until(pilot, lambda: (workdir / "greeting.txt").exists(), "greeting file")
        await pilot.press("ctrl+right_square_bracket")
        assert not app.terminal.takeover
        await wait_finished(pilot, app)
        assert (workdir / "greeting.txt").read_text() == "hello bob\n"


async def test_ctrl_c_interrupts_the_running_command(tmp_path, workdir) -> None:
    command = "echo sleeping-now; sleep 60; touch never.txt"
    app = fixed_app(options(tmp_path, workdir, [call(command), SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "wait")
        await wait_approval(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: "\nsleeping-now" in app.terminal.text(), "command running")
        await pilot.press("ctrl+t", "ctrl+c")
        done = await wait_finished(pilot, app)
        assert done.reason == "submitted"  # the agent went on after the interrupted command
        executed = kinds(app, ev.CommandExecuted)
        assert executed[0].result.exit_code == 130
        assert not (workdir / "never.txt").exists()


async def test_stop_key_stops_the_agent_while_it_waits(tmp_path, workdir) -> None:
    app = fixed_app(options(tmp_path, workdir, [call("touch later.txt"), SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "anything")
        await wait_approval(pilot, app)
        await pilot.press("ctrl+x")
        done = await wait_finished(pilot, app)
        assert done.reason == "stopped"
        assert not app.approval_bar.active
        assert not (workdir / "later.txt").exists()


async def test_context_warning(tmp_path, workdir) -> None:
    from tmax_local.agent import harness

    prompt_tokens = len(harness.render_prompt("fill the context")) // 4 + 1
    long_reply = call("true", "x" * 8000)  # ~2000 tokens
    opts = options(
        tmp_path,
        workdir,
        [long_reply, SUBMIT],
        ctx=prompt_tokens + 2048 + 100,
        approve="auto",
    )
    app = fixed_app(opts)
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "fill the context")
        await wait_until(pilot, lambda: app.status.info.context_warning, "context warning")
        await wait_finished(pilot, app)
        assert any("context" in str(n.render()).lower() for n in app.reasoning.query(".note"))
        assert any("Context" in n.title for n in app._notifications)


async def test_resume_reopens_and_continues_a_session(tmp_path, workdir) -> None:
    app = fixed_app(options(tmp_path, workdir, [call("echo one > one.txt"), SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "first task")
        await wait_approval(pilot, app)
        await pilot.press("a")
        await wait_finished(pilot, app)
        transcript = app.session.transcript_path
    assert transcript is not None and transcript.exists()
    before = len(load_records(transcript))

    app2 = fixed_app(options(tmp_path, workdir, [call("echo two > two.txt"), SUBMIT], resume=True))
    async with app2.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: 1 in app2.reasoning.steps, "old steps shown")
        assert app2.reasoning.steps[1].command == "echo one > one.txt"
        assert not (workdir / "two.txt").exists()  # read-only until the user continues
        await start(pilot, "now make two.txt")
        await wait_approval(pilot, app2)
        await pilot.press("a")
        await wait_finished(pilot, app2)
        assert (workdir / "two.txt").exists()
        model = app2.session.model
        assert "first task" in model.appended[0] and "now make two.txt" in model.appended[0]
    records = load_records(transcript)
    assert len(records) > before  # continued in the same transcript
    assert any(
        r["kind"] == "CommandExecuted" and r["command"] == "echo two > two.txt" for r in records
    )


async def test_export_markdown_and_cast(tmp_path, workdir) -> None:
    app = fixed_app(
        options(tmp_path, workdir, [call("printf 'colour \\033[31mred\\033[0m\\n'"), SUBMIT])
    )
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "print colour")
        await wait_approval(pilot, app)
        await pilot.press("a")
        await wait_finished(pilot, app)
        await pilot.press("ctrl+o")
        md = next(workdir.glob("tmax-session-*.md"))
        cast = next(workdir.glob("tmax-terminal-*.cast"))
    text = md.read_text()
    assert "print colour" in text and "colour red" in text
    lines = cast.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2
    assert any(
        "\x1b[31mred" in json.loads(line)[2] for line in lines[1:] if json.loads(line)[1] == "o"
    )


async def test_missing_model_offers_download_and_reports_failure_cleanly(
    tmp_path, workdir, monkeypatch
) -> None:
    monkeypatch.setenv("TMAX_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never use the network
    opts = options(tmp_path, workdir, [], scripted=False)  # the default model: not converted
    app = fixed_app(opts)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.last_error is not None, "model error")
        assert isinstance(app.last_error, ModelNeedsFetch)

        def notes() -> str:
            return " ".join(str(n.render()) for n in app.reasoning.query(".note"))

        assert "F5" in notes()
        await pilot.press("f5")
        await wait_until(pilot, lambda: "cannot be reached" in notes(), "offline message")
        await app.workers.wait_for_complete()
        assert not app.session.model_ready
        assert "Traceback" not in notes()


async def test_follow_up_instruction_is_queued_for_the_next_turn(tmp_path, workdir) -> None:
    app = fixed_app(options(tmp_path, workdir, [call("true"), SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "do something")
        await wait_approval(pilot, app)
        task_input = app.query_one("#task")
        task_input.focus()
        task_input.value = "also print the date"
        await pilot.press("enter")
        app.approval_bar.focus()
        await pilot.press("a")
        await wait_finished(pilot, app)
        added = kinds(app, ev.InstructionAdded)
        assert [e.text for e in added] == ["also print the date"]
        assert "also print the date" in app.session.model.appended[1]


async def test_resizing_the_app_resizes_the_pty(tmp_path, workdir) -> None:
    # auto mode: `stty size` runs without the approval bar (which changes the layout)
    replies = [call("stty size > size.txt"), SUBMIT]
    app = fixed_app(options(tmp_path, workdir, replies, approve="auto"))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.terminal
        await wait_until(pilot, lambda: app.session.shell is not None, "shell started")
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, lambda: pane.size.width > 60, "pane resized")
        await start(pilot, "size")
        await wait_finished(pilot, app)
        assert not kinds(app, ev.ApprovalRequested)
        rows, cols = (workdir / "size.txt").read_text().split()
        assert (int(rows), int(cols)) == (pane.size.height, pane.size.width)
        assert (pane.screen_model.lines, pane.screen_model.columns) == (int(rows), int(cols))


def test_download_progress_bars_become_status_texts() -> None:
    from tqdm import tqdm

    from tmax_local.tui.session import TqdmToStatus

    seen: list[str] = []
    sink = TqdmToStatus(seen.append, min_interval_s=0.0)
    for _ in tqdm(range(4), desc="Converting tmax-2b", file=sink, mininterval=0):
        pass
    assert seen[0] == "Converting tmax-2b 0%"
    assert seen[-1] == "Converting tmax-2b 100%"


async def test_switching_mode_from_the_bar_applies_to_the_next_command(tmp_path, workdir) -> None:
    replies = [call("touch first.txt"), call("touch second.txt"), SUBMIT]
    app = fixed_app(options(tmp_path, workdir, replies))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "two files")
        await wait_approval(pilot, app)
        await pilot.press("m")  # ask -> auto
        assert app.mode == "auto" and app.status.info.mode == "auto"
        assert app.approval_bar.active  # the pending command still waits for an answer
        await pilot.press("a")
        await wait_finished(pilot, app)
        assert (workdir / "first.txt").exists() and (workdir / "second.txt").exists()
        assert len(kinds(app, ev.ApprovalRequested)) == 1  # auto ran the harmless second one


async def test_quitting_while_the_agent_waits_closes_cleanly(tmp_path, workdir) -> None:
    app = fixed_app(options(tmp_path, workdir, [call("touch never.txt"), SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "anything")
        await wait_approval(pilot, app)
        shell = app.session.shell
        await pilot.press("ctrl+q")
    # run_test re-raises any exception the app hit while closing; none did.
    assert app.return_code == 0
    from tmax_local.shell import ShellClosed

    with pytest.raises(ShellClosed):  # the PTY shell was shut down
        shell.send_input(b"echo still there\n")
    assert not (workdir / "never.txt").exists()


async def test_a_model_load_failing_while_the_app_closes_is_not_a_crash(tmp_path, workdir) -> None:
    """Closing the app removes its widgets while a model load may still be failing (its
    shell went away under it): that late error has nowhere to be shown and must not crash
    the closing app (CI caught this under load)."""
    from tmax_local.tui.status import StatusBar

    app = fixed_app(options(tmp_path, workdir, [SUBMIT]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session.model_ready, "the model")
        await app.query_one(StatusBar).remove()  # what closing the app does to its widgets

        def failing_load() -> None:
            raise RuntimeError("the session was closed under the load")

        worker = app.run_worker(failing_load, group="model", thread=True, exit_on_error=False)
        await wait_until(pilot, lambda: worker.is_finished, "the failed load")
        for _ in range(5):  # let its state change reach the app
            await pilot.pause(0.02)
        assert app.is_running
    # run_test re-raises any exception the app hit (NoMatches, before the fix): none did.
