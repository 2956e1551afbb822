"""The real loop: scripted model, real PtyShell, real approval gate and policy."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

from tmax_local.agent import events as ev
from tmax_local.agent import harness
from tmax_local.agent.loop import Agent
from tmax_local.agent.parser import bash_reply, render_tool_calls
from tmax_local.agent.scripted import ScriptedModel
from tmax_local.agent.transcript import TranscriptWriter, load_records, stream_text, summarize
from tmax_local.approval import AllowRule, Approve, Edit, Gate, Reject
from tmax_local.shell import PtyShell

SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "Done.")


@pytest.fixture
def workdir(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def shell(workdir):
    with PtyShell(workdir, timeout=30) as sh:
        yield sh


def make_agent(replies, shell, workdir, mode="auto", approver=None, transcript=None, **kw):
    model = ScriptedModel(replies)
    gate = Gate(mode, cwd=workdir)
    agent = Agent(model, shell, gate, approver=approver, transcript=transcript, **kw)
    seen: list[ev.AgentEvent] = []
    agent.subscribe(seen.append)
    return agent, model, seen


def kinds(seen, cls):
    return [e for e in seen if isinstance(e, cls)]


def test_runs_commands_and_submits(shell, workdir, tmp_path):
    replies = [
        bash_reply("printf 'hello\\n' > out.txt", "I'll write the file first."),
        bash_reply("cat out.txt && cd sub 2>/dev/null; pwd"),
        "I am done.\n\n"
        + render_tool_calls([("bash", {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"})]),
    ]
    tw = TranscriptWriter(tmp_path / "s.jsonl")
    agent, model, seen = make_agent(replies, shell, workdir, transcript=tw)
    done = agent.run("Write hello to out.txt")
    tw.close()
    assert done.reason == "submitted" and done.steps == 3
    assert (workdir / "out.txt").read_text() == "hello\n"

    executed = kinds(seen, ev.CommandExecuted)
    assert [e.command for e in executed] == [
        "printf 'hello\\n' > out.txt",
        "cat out.txt && cd sub 2>/dev/null; pwd",
    ]
    assert executed[0].observation == "(no output)\n\n(exit_code=0)"
    assert executed[1].observation == f"hello\n{workdir}\n\n(exit_code=0)"
    # Exactly the RL framing, appended after the model's <|im_end|>.
    assert model.appended[0] == harness.render_prompt("Write hello to out.txt")
    assert model.appended[1] == harness.tool_response_turn("(no output)\n\n(exit_code=0)")
    assert model.stream.count("<|im_end|><|im_start|>user\n<tool_response>\n") == 2
    # Reasoning streamed as deltas adds up to the replies.
    step1 = "".join(e.text for e in seen if isinstance(e, ev.ReasoningDelta) and e.step == 1)
    assert step1 == replies[0]
    assert isinstance(seen[0], ev.SessionStarted) and isinstance(seen[-1], ev.AgentFinished)
    assert len(kinds(seen, ev.TurnStats)) == 3

    records = load_records(tmp_path / "s.jsonl")
    text, pending = stream_text(records)
    assert pending is None and text == model.stream
    summary = summarize(records)
    assert summary["finished"]["reason"] == "submitted"
    assert [s.get("exit_code") for s in summary["steps"]] == [0, 0, None]
    assert summary["steps"][1]["output"].startswith("hello")


def test_format_error_and_ignored_calls(shell, workdir):
    replies = [
        "Let me think about this without a tool.",
        render_tool_calls([("bash", {"command": "echo one"}), ("bash", {"command": "echo two"})]),
        SUBMIT,
    ]
    agent, model, seen = make_agent(replies, shell, workdir)
    assert agent.run("t").reason == "submitted"
    fe = kinds(seen, ev.FormatErrorRaised)
    assert len(fe) == 1 and fe[0].message == harness.format_error()
    assert model.appended[1] == harness.user_message_turn(harness.format_error())
    prop = kinds(seen, ev.ToolCallProposed)[0]
    assert prop.command == "echo one" and prop.ignored == ["echo two"]
    assert kinds(seen, ev.CommandExecuted)[0].observation == "one\n\n(exit_code=0)"


def test_ask_mode_reject_edit_and_allow_rule(shell, workdir):
    replies = [
        bash_reply("rm -rf precious"),
        bash_reply("ls -1"),
        bash_reply("touch made.txt"),
        bash_reply("touch made2.txt"),
        SUBMIT,
    ]
    (workdir / "precious").mkdir()
    answers = iter(
        [
            Reject("do not delete that"),
            Edit("ls -1 -a"),
            AllowRule("touch *"),
        ]
    )
    asked: list[str] = []

    def approver(request):
        asked.append(request.command)
        return next(answers)

    agent, model, seen = make_agent(replies, shell, workdir, mode="ask", approver=approver)
    assert agent.run("t").reason == "submitted"
    assert (workdir / "precious").is_dir()
    assert (workdir / "made.txt").exists() and (workdir / "made2.txt").exists()
    # The rule covered the second touch: it was not asked.
    assert asked == ["rm -rf precious", "ls -1", "touch made.txt"]
    rej = kinds(seen, ev.CommandRejected)[0]
    assert "do not delete that" in rej.observation
    assert model.appended[1] == harness.tool_response_turn(rej.observation)
    ran = [e.command for e in kinds(seen, ev.CommandExecuted)]
    assert ran == ["ls -1 -a", "touch made.txt", "touch made2.txt"]
    assert len(kinds(seen, ev.ApprovalRequested)) == len(kinds(seen, ev.ApprovalAnswered)) == 3


def test_never_run_mode_runs_nothing(shell, workdir):
    agent, _model, seen = make_agent(
        [bash_reply("touch x"), SUBMIT], shell, workdir, mode="never-run"
    )
    assert agent.run("t").reason == "submitted"
    assert not (workdir / "x").exists()
    assert kinds(seen, ev.CommandRejected) and not kinds(seen, ev.CommandExecuted)


def test_step_limit_timeout_and_script_end(shell, workdir):
    from tmax_local.agent.harness import HarnessConfig

    cfg = HarnessConfig(max_steps=2, timeout=1.0)
    agent, _model, seen = make_agent(
        [bash_reply("sleep 30"), bash_reply("echo hi"), SUBMIT], shell, workdir, config=cfg
    )
    done = agent.run("t")
    assert done.reason == "step_limit" and done.steps == 2
    first = kinds(seen, ev.CommandExecuted)[0]
    assert first.result.timed_out and first.observation.endswith("(exit_code=124)")
    agent2, _, _ = make_agent([bash_reply("echo a")], shell, workdir)
    done2 = agent2.run("t")
    assert done2.reason == "error" and "no reply left" in done2.message


def test_stop_from_another_thread_and_queued_instruction(shell, workdir):
    from tmax_local.shell import CommandStarted

    sleeping = threading.Event()
    shell.subscribe(
        lambda e: sleeping.set() if isinstance(e, CommandStarted) and "sleep" in e.command else None
    )
    replies = [bash_reply("echo first"), bash_reply("sleep 20"), SUBMIT]
    agent, model, seen = make_agent(replies, shell, workdir)
    agent.queue_instruction("Please also print the date.")
    result: list[ev.AgentFinished] = []
    t = threading.Thread(target=lambda: result.append(agent.run("t")))
    t.start()
    assert sleeping.wait(30)
    agent.stop()
    t.join(30)
    assert not t.is_alive()
    assert result[0].reason == "stopped" and result[0].steps == 2
    added = kinds(seen, ev.InstructionAdded)
    assert added and added[0].step == 1 and added[0].text == "Please also print the date."
    assert model.appended[1].endswith(
        "</tool_response>\n<|im_end|>\n<|im_start|>user\nPlease also print the date.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )
    # The shell is usable afterwards.
    assert shell.run("echo alive", 10).output.strip() == "alive"


def test_context_thinning_keeps_going(shell, workdir):
    big = "python3 -c \"print('x' * 9000)\""
    replies = [bash_reply(big), bash_reply(big), bash_reply(big), bash_reply("echo small"), SUBMIT]
    agent, model, seen = make_agent(replies, shell, workdir, context_reserve=200, keep_recent=1)
    model.context_limit = 7000  # ~28k characters
    done = agent.run("t")
    assert done.reason == "submitted"
    thinned = kinds(seen, ev.ContextThinned)
    assert thinned and model.resets >= 1
    assert thinned[0].tokens_after < thinned[0].tokens_before
    assert "---- HEAD (200 chars) ----" in model.stream


def test_context_full_stops_clearly(shell, workdir):
    agent, model, _seen = make_agent([bash_reply("echo a")], shell, workdir)
    model.context_limit = 100
    done = agent.run("t")
    assert done.reason == "context_full" and "context" in done.message


def _trajectory(name: str) -> list[dict]:
    path = Path(__file__).parent / "data" / "tmax_trajectories" / f"{name}.json.gz"
    return json.loads(gzip.decompress(path.read_bytes()))


def test_replay_real_trajectory_commands(shell, workdir):
    """tmax-2b's own first replies in pypi-server, replayed verbatim (they only touch the
    current directory), through the real policy in ask mode with approve-all."""
    msgs = _trajectory("pypi-server__7URwbuY")
    replies = []
    for m in msgs:
        if m["role"] != "assistant":
            continue
        calls = [
            (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in m["tool_calls"]
        ]
        replies.append(render_tool_calls(calls, m["content"] or ""))
        if len(replies) == 3:
            break
    replies.append(SUBMIT)
    agent, _model, seen = make_agent(
        replies, shell, workdir, mode="ask", approver=lambda r: Approve()
    )
    assert agent.run("t").reason == "submitted"
    ran = kinds(seen, ev.CommandExecuted)
    assert [e.command for e in ran][:2] == ["ls -la", "mkdir -p vectorops"]
    assert (workdir / "vectorops").is_dir()
    assert all(e.observation.endswith("(exit_code=0)") for e in ran)
    # The first reply had two calls: the second was reported, not run.
    assert kinds(seen, ev.ToolCallProposed)[0].ignored == [
        'find . -type f -name "*.py" 2>/dev/null | head -20'
    ]


def test_resume_from_transcript(shell, workdir, tmp_path):
    from tmax_local.agent.harness import HarnessConfig

    tw = TranscriptWriter(tmp_path / "r.jsonl")
    agent, model, _ = make_agent(
        [bash_reply("echo first")], shell, workdir, transcript=tw, config=HarnessConfig(max_steps=1)
    )
    assert agent.run("t").reason == "step_limit"
    tw.close()
    records = load_records(tmp_path / "r.jsonl")
    conversation, pending = stream_text(records)
    assert conversation == model.stream
    assert pending == harness.tool_response_turn("first\n\n(exit_code=0)")
    agent2, model2, seen2 = make_agent([bash_reply("echo second"), SUBMIT], shell, workdir)
    done = agent2.resume(conversation, pending, steps_done=1)
    assert done.reason == "submitted" and done.steps == 3
    assert model2.appended[0] == conversation + pending
    assert kinds(seen2, ev.StepStarted)[0].step == 2


def test_replay_reproduces_recorded_observations(shell, workdir):
    """regex-log: tmax-2b's own replies (heredocs, echo -e, cat) replayed through the loop with
    /app mapped to a temp dir give back the very observations recorded on Terminal-Bench,
    byte for byte, except where the original box lacked python3."""
    msgs = _trajectory("regex-log__8VmDKow")
    app = str(workdir)
    replies, recorded = [], []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or not m.get("tool_calls"):
            continue
        calls = [
            (c["function"]["name"], json.loads(c["function"]["arguments"].replace("/app", app)))
            for c in m["tool_calls"]
        ]
        replies.append(render_tool_calls(calls, m["content"] or ""))
        recorded.append(msgs[i + 1]["content"].replace("/app", app))
        if len(replies) == 12:
            break
    replies = replies[1:] + [SUBMIT]  # skip the opening `find /app …` (searches elsewhere)
    recorded = recorded[1:]
    agent, _model, seen = make_agent(
        replies, shell, workdir, mode="ask", approver=lambda r: Approve()
    )
    assert agent.run("t").reason == "submitted"
    ran = kinds(seen, ev.CommandExecuted)
    assert len(ran) == len(recorded)
    same = 0
    for e, want in zip(ran, recorded, strict=True):
        if "python3" in e.command or "here-document" in want:
            continue
        assert e.observation == want
        same += 1
    assert same >= 5
    assert (workdir / "regex.txt").read_text().startswith("(?<![A-Za-z0-9])\\d{4}-")
