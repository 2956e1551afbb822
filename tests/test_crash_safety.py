"""Nothing lost when things die: torn transcript lines, the bounded terminal recording."""

from __future__ import annotations

import json
from pathlib import Path

from tmax_local.agent.transcript import TranscriptWriter, drop_torn_tail, load_records
from tmax_local.shell import AsciicastRecorder
from tmax_local.shell.events import Output


def test_a_torn_last_line_is_skipped_on_read_and_cut_before_appending(tmp_path: Path):
    path = tmp_path / "s.jsonl"
    w = TranscriptWriter(path)
    w.write("SessionStarted", session_id="s", task="t", model="m")
    w.write("Reply", step=1, text="héllo ✓", finish="stop")
    w.close()
    whole = path.read_bytes()
    # a crash mid-write: half a record, cut inside a multi-byte character
    torn = json.dumps({"kind": "Reply", "step": 2, "text": "ünïcode ✓✓"}, ensure_ascii=False)
    cut = torn.encode()[: torn.encode().index("✓".encode()) + 1]
    path.write_bytes(whole + cut)
    assert [r["kind"] for r in load_records(path)] == ["SessionStarted", "Reply"]
    # the resumed session's writer cuts the torn tail: the next record is a line of its own
    w = TranscriptWriter(path)
    w.write("InstructionAdded", step=2, text="go on")
    w.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x) for x in lines[:-1])
    assert [r["kind"] for r in load_records(path)] == [
        "SessionStarted",
        "Reply",
        "InstructionAdded",
    ]
    assert drop_torn_tail(path) == 0  # complete files are left alone
    assert drop_torn_tail(tmp_path / "absent.jsonl") == 0


def test_records_are_strict_json(tmp_path: Path):
    path = tmp_path / "s.jsonl"
    w = TranscriptWriter(path)
    w.write("TurnStats", step=1, gen_tokens_per_s=float("nan"), x=float("inf"))
    w.close()
    rec = json.loads(
        path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c))
    )
    assert rec["gen_tokens_per_s"] is None and rec["x"] is None


def _events(path: Path) -> list:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2
    return [json.loads(x) for x in lines[1:]]


def test_the_terminal_recording_is_rotated_at_its_cap_with_a_notice(tmp_path: Path):
    path = tmp_path / "t.cast"
    notices: list[str] = []
    rec = AsciicastRecorder(path, cols=80, rows=24, max_bytes=4096, on_rotate=notices.append)
    chunk = ("x" * 99 + "\n").encode()
    for _ in range(200):  # 20 KB through a 4 KB cap
        rec(Output(chunk))
    rec.close()
    prev = tmp_path / "t.1.cast"
    assert rec.rotations >= 4 and len(notices) == rec.rotations
    assert "earlier output moved to t.1.cast" in notices[0]
    for p in (path, prev):
        assert p.stat().st_size <= 4096
        events = _events(p)
        assert all(e[1] in ("o", "r") for e in events)
    first = _events(path)[0]
    assert "tmax-local: terminal recording reached" in first[2]
    # the newest output is in the current file, nothing beyond two files is kept
    assert sorted(x.name for x in tmp_path.iterdir()) == ["t.1.cast", "t.cast"]
    total = sum(e[2].count("x" * 99) for p in (path, prev) for e in _events(p))
    assert 0 < total < 200


def _session(tmp_path: Path, *records: tuple[str, dict]) -> list[dict]:
    path = tmp_path / "s.jsonl"
    w = TranscriptWriter(path)
    for kind, fields in records:
        w.write(kind, **fields)
    w.close()
    return load_records(path)


def test_resume_input_after_a_kill_in_each_phase(tmp_path: Path):
    from tmax_local.agent import harness
    from tmax_local.agent.transcript import INTERRUPTED_OBSERVATION, resume_input

    start = ("SessionStarted", {"session_id": "s", "task": "t", "model": "m"})
    prompt = ("Appended", {"step": 1, "text": "PROMPT" + harness.GENERATION_PROMPT, "reset": True})
    reply = ("Reply", {"step": 1, "text": "call <tool_call>x</tool_call>", "finish": "stop"})
    proposed = ("ToolCallProposed", {"step": 1, "command": "sleep 9", "ignored": []})
    # killed mid-reply: the step is generated again, after the user's instruction
    conv, nxt, done = resume_input(_session(tmp_path, start, prompt), "go on")
    assert (conv, done) == ("", 0)
    assert nxt == "PROMPT" + harness.user_turn("go on") + harness.GENERATION_PROMPT
    # killed during the command: the model hears it was interrupted, in its trained format
    (tmp_path / "s.jsonl").unlink()
    conv, nxt, done = resume_input(_session(tmp_path, start, prompt, reply, proposed), "go on")
    assert done == 1 and conv.endswith("</tool_call>" + harness.IM_END)
    assert nxt == harness.tool_response_turn(INTERRUPTED_OBSERVATION, instruction="go on")
    # killed after the command reported but before the next turn was recorded
    (tmp_path / "s.jsonl").unlink()
    ran = ("CommandExecuted", {"step": 1, "command": "sleep 9", "result": {}, "observation": "OBS"})
    _, nxt, _ = resume_input(_session(tmp_path, start, prompt, reply, proposed, ran), "go on")
    assert nxt == harness.tool_response_turn("OBS", instruction="go on")
    # a reply with no tool call: the instruction is a user message
    (tmp_path / "s.jsonl").unlink()
    plain = ("Reply", {"step": 1, "text": "no call", "finish": "length"})
    _, nxt, _ = resume_input(_session(tmp_path, start, prompt, plain), "go on")
    assert nxt == harness.user_message_turn("go on", model_closed_turn=False)
