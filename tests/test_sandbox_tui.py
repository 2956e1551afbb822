"""The sandbox in the app (Pilot, real PTY, real Landlock): status bar, the `u` answer
("run unsandboxed", this command once), the network toggle (F4), and the default that
follows the approval mode (F3)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from pilot_support import call, fixed_app, start, wait_until

from tmax_local.agent.options import ModelOptions, SessionOptions
from tmax_local.shell import CommandFinished
from tmax_local.shell import sandbox as sb
from tmax_local.tui.app import TmaxApp, TuiOptions

pytestmark = [
    pytest.mark.skipif(sb.detect().mechanism != "landlock", reason="needs Landlock"),
    pytest.mark.usefixtures("private_dirs"),
]
SIZE = (120, 30)


SUBMIT = call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")


def app_for(tmp_path: Path, replies: list[str], **session: object) -> TmaxApp:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    script = tmp_path / "script.json"
    script.write_text(json.dumps(replies))
    model = ModelOptions(model=f"script:{script}")
    opts = TuiOptions(session=SessionOptions(model=model, cwd=work, **session))  # type: ignore[arg-type]
    return fixed_app(opts)


async def test_u_runs_one_command_unsandboxed(tmp_path: Path) -> None:
    replies = [call("touch ../u-marker"), call("touch ../second-marker"), SUBMIT]
    app = app_for(tmp_path, replies, approve="ask", sandbox="workspace")
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, "escape")
        assert app.status.info.sandbox == "sandbox workspace, no net"
        await wait_until(pilot, lambda: app.approval_bar.active, "approval bar")
        assert app.approval_bar.sandboxed
        await pilot.press("u")
        await wait_until(
            pilot,
            lambda: (
                app.approval_bar.active
                and app.approval_bar.view.command == "touch ../second-marker"
            ),
            "second approval",
        )
        await pilot.press("a")
        await wait_until(pilot, lambda: app.finished is not None, "finished")
        await app.workers.wait_for_complete()
    assert (tmp_path / "u-marker").exists()
    assert not (tmp_path / "second-marker").exists()


async def test_network_toggle_and_default_follows_mode(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    connect = (
        f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}))\""
    )
    app = app_for(tmp_path, [SUBMIT], approve="ask")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.session.shell is not None, "shell started")
            shell = app.session.shell
            assert shell is not None and app.status.info.sandbox == ""
            await pilot.press("f4")  # nothing to toggle with the sandbox off
            await app.workers.wait_for_complete()
            assert shell.sandbox is None
            await pilot.press("f3")  # ask -> auto: commands run unasked -> sandbox
            await wait_until(
                pilot, lambda: app.status.info.sandbox.startswith("sandbox work"), "sandbox on"
            )
            assert app.session.mode == "auto"
            assert shell.run("touch ../marker").exit_code == 1
            assert shell.run(connect).exit_code != 0
            await pilot.press("f4")
            await wait_until(
                pilot,
                lambda: app.status.info.sandbox == "sandbox workspace, net",
                "network allowed",
            )
            assert shell.run(connect).exit_code == 0
            await pilot.press("f4")
            await wait_until(
                pilot,
                lambda: app.status.info.sandbox == "sandbox workspace, no net",
                "network blocked again",
            )
            assert shell.run(connect).exit_code != 0
            # let the app show those four commands' events before it closes
            await wait_until(
                pilot,
                lambda: sum(isinstance(e, CommandFinished) for e in app.events_seen) >= 4,
                "commands shown",
            )
    finally:
        server.close()
    assert not (tmp_path / "marker").exists()
    assert os.path.isdir(tmp_path / "work")
