"""End to end: the real `tmax-local` command in tmux, driven by keys, read with capture-pane."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tmax_local.testing.tmux import TmuxSession, tmax_argv

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def call(command: str, prose: str) -> str:
    return (
        f"{prose}\n<tool_call>\n<function=bash>\n<parameter=command>\n{command}\n"
        "</parameter>\n</function>\n</tool_call>"
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "TMAX_DATA_DIR": str(tmp_path / "data"),
        "TMAX_CONFIG_DIR": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }


def test_cli_in_tmux_with_scripted_model(tmp_path: Path, env: dict[str, str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                call("echo from-tmux > e2e.txt && cat e2e.txt", "I will write the file."),
                call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "Done."),
            ]
        )
    )
    tmux = TmuxSession([*tmax_argv(), "--model", f"script:{script}", "--cwd", str(work)], env, work)
    try:
        tmux.wait_for(lambda s: "Reasoning" in s and "Terminal" in s, "the app's layout")
        tmux.wait_for(lambda s: "script:script.json" in s, "model shown in the status bar")
        tmux.text("write the file")
        tmux.keys("Enter")
        screen = tmux.wait_for(lambda s: "run this command?" in s, "the approval bar")
        assert "echo from-tmux" in screen
        assert not (work / "e2e.txt").exists()
        tmux.keys("a")
        tmux.wait_for(lambda s: "finished (submitted)" in s, "the agent to finish")
        assert (work / "e2e.txt").read_text() == "from-tmux\n"
        screen = tmux.screen()
        assert "from-tmux" in screen  # the command's output in the terminal pane
        tmux.keys("C-q")
        deadline = time.monotonic() + 20
        while not tmux.pane_dead():
            assert time.monotonic() < deadline, "the app did not quit"
            time.sleep(0.1)
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.close()


def test_cli_in_tmux_missing_model_is_not_a_traceback(tmp_path: Path, env: dict[str, str]):
    tmux = TmuxSession([*tmax_argv(), "--model", str(tmp_path / "nope.gguf")], env, tmp_path)
    try:
        screen = tmux.wait_for(lambda s: "not found" in s, "the missing-model message")
        assert "Traceback" not in screen
        tmux.keys("C-q")
    finally:
        tmux.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    from tmax_local.convert import convert_checkpoint
    from tmax_local.testing.checkpoints import make_tiny_checkpoint

    d = tmp_path_factory.mktemp("tiny")
    ckpt = make_tiny_checkpoint(d / "ckpt")
    return Path(convert_checkpoint(ckpt, "F16", d / "tiny-F16.gguf", progress=False))


# Makes the random tiny model propose one fixed command, in TMax's tool-call format.
TOOL_CALL_GRAMMAR = r"""root ::= "ok" "\n<tool_call>\n<function=bash>\n<parameter=command>\necho tiny-model > tiny.txt\n</parameter>\n</function>\n</tool_call>"
"""


def test_cli_in_tmux_with_tiny_converted_model(
    tmp_path: Path, env: dict[str, str], tiny_gguf: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    grammar = tmp_path / "call.gbnf"
    grammar.write_text(TOOL_CALL_GRAMMAR)
    argv = [
        *tmax_argv(),
        "--model",
        str(tiny_gguf),
        "--grammar",
        str(grammar),
        "--cwd",
        str(work),
    ]
    tmux = TmuxSession(argv, env, work)
    try:
        tmux.wait_for(lambda s: "Describe a task" in s, "the interactive screen")
        tmux.wait_for(
            lambda s: "F16" in s and "CPU" in s, "the loaded model in the status bar", timeout=120
        )
        tmux.text("write tiny.txt")
        tmux.keys("Enter")
        screen = tmux.wait_for(
            lambda s: "run this command?" in s, "the model's proposal", timeout=180
        )
        assert "echo tiny-model > tiny.txt" in screen
        assert "tok/s" in screen  # generation speed reported from the real engine
        tmux.keys("a")
        tmux.wait_for(lambda s: "Step 2" in s, "the next step after the command ran", timeout=180)
        assert (work / "tiny.txt").read_text() == "tiny-model\n"
        tmux.keys("C-x")  # stop the agent (it would propose the same command forever)
        tmux.wait_for(lambda s: "finished (stopped)" in s, "the agent to stop", timeout=120)
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.close()
