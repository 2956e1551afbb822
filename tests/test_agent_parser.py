"""The reply parser against the 45 real tmax-2b trajectories and hand-made edge cases."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tmax_local.agent import harness
from tmax_local.agent.parser import ReplyParser, bash_reply, parse_reply, render_tool_calls

# 45 tmax-2b Terminal-Bench trajectories from the TMax repository (see LICENSE-NOTE.txt there).
TRAJ_DIR = Path(__file__).parent / "data" / "tmax_trajectories"
TRAJECTORIES = sorted(TRAJ_DIR.glob("*.json.gz"))


def load_trajectory(path: Path) -> list[dict]:
    return json.loads(gzip.decompress(path.read_bytes()))


def _assistant_messages(path: Path):
    for m in load_trajectory(path):
        if m["role"] == "assistant":
            yield m


def _recorded(m) -> list[tuple[str, dict]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in (m.get("tool_calls") or [])
    ]


def test_all_45_trajectories_present():
    assert len(TRAJECTORIES) == 45


@pytest.mark.parametrize("path", TRAJECTORIES, ids=lambda p: p.name.split("__")[0])
def test_parse_recovers_recorded_commands(path: Path):
    n = 0
    for m in _assistant_messages(path):
        calls = _recorded(m)
        content = m["content"] or ""
        # Two renderings: the template's (content trimmed, blank line before the call) and
        # the raw stream vLLM split (content verbatim, then the call), streamed in odd chunks.
        for raw in (render_tool_calls(calls, content), content + render_tool_calls(calls)):
            p = ReplyParser()
            for i in range(0, len(raw), 7):
                p.feed(raw[i : i + 7])
            p.feed(harness.IM_END)
            reply = p.finish()
            if not calls:
                assert reply.command is None and reply.error is not None
                continue
            assert [c.name for c in reply.calls] == [c[0] for c in calls]
            assert [c.arguments for c in reply.calls] == [c[1] for c in calls]
            assert reply.command == calls[0][1]["command"]
            assert reply.ignored == [c[1]["command"] for c in calls[1:]]
            assert reply.error is None
            n += 1
    assert n > 0


def test_recorded_malformed_reply_is_a_format_error():
    # Recorded in filter-js-from-html: "<functionbash>" — vLLM found no call, nor may we.
    raw = (
        "Let me check.\n\n<tool_call>\n<functionbash>\n<parameter=command>\nls -la /app/\n"
        "</parameter>\n</function>\n</tool_call>"
    )
    reply = parse_reply(raw)
    assert reply.command is None
    assert reply.malformed == 1
    assert reply.error == harness.format_error()
    assert reply.error.startswith("Format error: Your last response did not include a valid")


def test_no_call_prose_only():
    reply = parse_reply("I think the answer is 42.")
    assert reply.command is None and reply.error == harness.format_error()
    assert reply.reasoning == "I think the answer is 42."


def test_heredoc_and_blank_lines_kept_exactly():
    cmd = "cat > /tmp/x.py << 'EOF'\n\nimport os\n\n\nprint('</parameter> ok')\nEOF\n"
    reply = parse_reply("Write it.\n</think>\n\n" + bash_reply(cmd))
    assert reply.command == cmd
    assert reply.reasoning == "Write it."


def test_only_one_newline_stripped_each_side():
    raw = "<tool_call>\n<function=bash>\n<parameter=command>\n\n  echo hi  \n\n</parameter>\n</function>\n</tool_call>"
    assert parse_reply(raw).command == "\n  echo hi  \n"


def test_several_calls_first_runs_rest_ignored():
    raw = render_tool_calls(
        [("bash", {"command": "ls"}), ("bash", {"command": "pwd"}), ("bash", {"command": "id"})],
        "Explore.",
    )
    reply = parse_reply(raw)
    assert reply.command == "ls" and reply.ignored == ["pwd", "id"]


def test_unknown_tool_is_a_format_error():
    reply = parse_reply(render_tool_calls([("python", {"code": "print(1)"})]))
    assert reply.command is None
    assert "Unknown tool 'python'" in reply.error


def test_text_after_im_end_is_dropped_and_unclosed_call_at_end_accepted():
    p = ReplyParser()
    kept = p.feed(
        "x<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\n<|im_"
    )
    assert p.in_tool_call
    kept += p.feed("end|>garbage")
    assert p.ended and "garbage" not in kept and "<|im_end|>" not in p.text
    assert p.finish().command == "ls"


def test_command_cut_mid_parameter_is_not_run():
    reply = parse_reply("<tool_call>\n<function=bash>\n<parameter=command>\nrm -rf /tmp/some")
    assert reply.command is None and reply.error is not None
