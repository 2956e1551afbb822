"""The harness text: first prompt vs the real Qwen 3.5 template, observations vs the
trajectories' tool messages, stream framing."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import jinja2
import jinja2.sandbox
import pytest

from tmax_local.agent import harness

TRAJ_DIR = Path(__file__).parent / "data" / "tmax_trajectories"
TRAJECTORIES = sorted(TRAJ_DIR.glob("*.json.gz"))


def load(path: Path) -> list[dict]:
    return json.loads(gzip.decompress(path.read_bytes()))


def render_with_template(messages, tools, add_generation_prompt=True) -> str:
    """Render like Hugging Face's apply_chat_template: sandboxed jinja, trim/lstrip blocks,
    a tojson that keeps key order and UTF-8, raise_exception available."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    tpl = env.from_string(harness.chat_template_source())
    return tpl.render(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt)


@pytest.mark.parametrize(
    "task", ["Say hi.", "  Fix the bug in /app/x.py — ünïcode ✓\n\nThen test.\n"]
)
def test_first_prompt_equals_template_rendering(task):
    messages = [
        {"role": "system", "content": harness.prompts().system},
        {"role": "user", "content": harness.render_instance(task)},
    ]
    expected = render_with_template(messages, [harness.BASH_TOOL])
    assert harness.render_prompt(task) == expected
    assert expected.endswith("<|im_start|>assistant\n<think>\n")


def test_tool_response_turn_is_the_rl_framing():
    # open-instruct vllm_qwen3_xml: tool template + generation prompt, right after the
    # model's sampled <|im_end|>.
    assert harness.tool_response_turn("out\n\n(exit_code=0)") == (
        "<|im_start|>user\n<tool_response>\nout\n\n(exit_code=0)\n</tool_response>\n<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )
    # A reply cut by the token limit is closed first.
    assert harness.tool_response_turn("x", model_closed_turn=False).startswith(
        "<|im_end|><|im_start|>user\n<tool_response>\nx\n"
    )
    with_instr = harness.tool_response_turn("x", instruction="  also check y  ")
    assert with_instr.endswith(
        "</tool_response>\n<|im_end|>\n<|im_start|>user\nalso check y<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )


def test_system_and_instance_match_the_trajectories():
    for path in TRAJECTORIES[:10]:
        msgs = load(path)
        assert msgs[0]["content"].strip() == harness.prompts().system.strip()
        user = msgs[1]["content"]
        prefix = "Please solve this task:\n\n"
        assert user.startswith(prefix)
        # The instance after the task is identical to ours.
        tail = harness.render_instance("TASK").split("TASK", 1)[1]
        assert user.endswith(tail)


def test_format_error_matches_the_trajectories():
    found = 0
    for path in TRAJECTORIES:
        for m in load(path):
            if m["role"] == "user" and m["content"].startswith("Format error"):
                assert m["content"].strip() == harness.format_error()
                found += 1
    assert found >= 3


def _rebuild_output(content: str) -> tuple[str, int]:
    """From a recorded observation, an output that must format to it again."""
    body, code = re.fullmatch(r"(.*)\n\n\(exit_code=(-?\d+)\)", content, re.DOTALL).groups()
    if body == "(no output)":
        return "", int(code)
    m = re.fullmatch(
        r".*?\n\n---- HEAD \((\d+) chars\) ----\n(.*)\n---- (\d+) chars elided ----\n"
        r"---- TAIL \((\d+) chars\) ----\n(.*)",
        body,
        re.DOTALL,
    )
    if m is None:
        return body, int(code)
    head, elided, tail = m.group(2), int(m.group(3)), m.group(5)
    assert len(head) == int(m.group(1)) == 5000 and len(tail) == int(m.group(4)) == 5000
    return head + "x" * elided + tail, int(code)


def test_observations_match_every_recorded_tool_message():
    n = truncated = empty = 0
    for path in TRAJECTORIES:
        for m in load(path):
            if m["role"] != "tool":
                continue
            output, code = _rebuild_output(m["content"])
            assert harness.format_observation(output, code) == m["content"]
            n += 1
            truncated += "---- HEAD (5000 chars) ----" in m["content"]
            empty += output == ""
    assert n > 1600 and truncated > 0 and empty > 0


def test_observation_layout_details():
    cfg = harness.HarnessConfig()
    assert harness.format_observation("", 0) == "(no output)\n\n(exit_code=0)"
    assert harness.format_observation(" \n\n", 0) == "(no output)\n\n(exit_code=0)"
    assert harness.format_observation("  a\nb \n", 3) == "  a\nb\n\n(exit_code=3)"
    assert harness.format_observation("a", 2, stderr="b") == "a\nb\n\n(exit_code=2)"
    assert harness.format_observation("", 1, stderr="b") == "b\n\n(exit_code=1)"
    exact = "y" * cfg.observation_max_chars
    assert harness.format_observation(exact, 0) == exact + "\n\n(exit_code=0)"
    long = "h" * 5000 + "m" * 7 + "t" * 4999 + "T"
    obs = harness.format_observation(long, 0)
    assert obs.startswith(
        harness.prompts().too_long_hint
        + "\n\n---- HEAD (5000 chars) ----\n"
        + "h" * 5000
        + "\n---- 7 chars elided ----\n"
    )
    assert obs.endswith("---- TAIL (5000 chars) ----\n" + "t" * 4999 + "T\n\n(exit_code=0)")
    small = harness.HarnessConfig(
        observation_max_chars=10, observation_head_chars=3, observation_tail_chars=2
    )
    assert (
        "---- HEAD (3 chars) ----\nabc\n---- 7 chars elided ----\n---- TAIL (2 chars) ----\nkl\n\n"
        in harness.format_observation("abcdefghijkl", 0, config=small)
    )


def test_submission_detection():
    assert harness.is_submission("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
    assert harness.is_submission("  echo 'COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT'\n")
    assert not harness.is_submission("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && rm -rf x")
    assert not harness.is_submission("ls")


def test_agent_imports_without_textual_or_llama_and_does_no_work():
    """The agent core imports without Textual, and importing loads neither llama.cpp nor
    prompt files (no work at import time)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import tmax_local.agent.loop, tmax_local.agent.engine, tmax_local.agent.cli_run\n"
        "import tmax_local.agent.resolve, tmax_local.agent.scripted, tmax_local.agent.transcript\n"
        "bad = [m for m in ('textual', 'llama_cpp', 'yaml', 'huggingface_hub') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
