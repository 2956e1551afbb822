"""Session transcripts: JSON lines written as things happen, read back for resume and --json.

Each line is one record ``{"kind": ..., "t": unix time, ...fields}``. ``kind`` is an event
class name from ``events.py`` (fields as in the dataclass; shell results and approval
objects are turned into plain dicts) or one of the agent's own bookkeeping records:

- ``Appended`` {step, text, reset}: exactly what step ``step`` appends to the model's token
  stream (the prompt, then each observation turn), recorded as soon as it is known;
  ``reset`` marks a fresh stream (the first prompt, a thinned conversation, a resume);
- ``Reply`` {step, text, finish}: the model's raw reply (``finish == "stop"`` means its
  ``<|im_end|>`` followed it in the stream).

Every record is one ``write`` of a whole line, flushed at once, so a crash (even ``kill -9``)
loses nothing written so far; at worst the last line is torn. ``load_records`` reads a file
back (skipping a torn last line), a writer reopening the file for a resumed session cuts a
torn tail off first (so the next record starts on its own line), and ``stream_text``
rebuilds the conversation text from it, which is how a session is resumed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import IO, Any

from tmax_local.agent import harness
from tmax_local.agent.events import AgentEvent


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for dataclasses, enums, paths, bytes and nested containers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
        out.setdefault("type", type(value).__name__)
        return out
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN/inf are not JSON
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "value") and hasattr(value, "name"):  # enums
        return to_jsonable(value.value)
    return str(value)


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


class TranscriptWriter:
    """Appends records to a JSON-lines file, one flushed line per record."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_tail(self.path)
        self._fh: IO[str] | None = self.path.open("a", encoding="utf-8")

    @classmethod
    def in_dir(cls, directory: str | Path, session_id: str) -> TranscriptWriter:
        return cls(Path(directory) / f"{session_id}.jsonl")

    def write(self, kind: str, **fields: Any) -> None:
        if self._fh is None:
            return
        record = {"kind": kind, "t": round(time.time(), 3), **to_jsonable(fields)}
        self._fh.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        self._fh.flush()

    def event(self, ev: AgentEvent) -> None:
        fields = {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev)}
        self.write(ev.kind, **fields)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def drop_torn_tail(path: Path) -> int:
    """Cut an unfinished last line (left by a crash mid-write) off a JSON-lines file, so that
    appending continues on a line of its own. Returns the bytes removed."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    with os.fdopen(fd, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            nl = block.rfind(b"\n")
            if nl != -1:
                keep = start + nl + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
        return size - keep


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a transcript (a torn last line, from a crash, is skipped)."""
    records = []
    # Bytes, decoded per line: a line torn inside a multi-byte character must not make the
    # whole file unreadable.
    for raw in Path(path).read_bytes().split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "kind" in record:
            records.append(record)
    return records


def list_sessions(directory: str | Path) -> list[Path]:
    """Transcript files in ``directory``, newest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(d.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)


def stream_text(records: list[dict[str, Any]]) -> tuple[str, str | None]:
    """Rebuild (conversation text so far, pending append) from a transcript.

    The conversation text is every appended turn followed by its reply (and the reply's
    ``<|im_end|>`` when the model closed its turn). The pending append is the last
    ``Appended`` record that no reply followed yet (None if the last record is a reply).
    """
    text = ""
    pending: str | None = None
    for r in records:
        if r["kind"] == "Appended":
            if r.get("reset"):
                text = ""
            elif pending is not None:
                text += pending
            pending = r["text"]
        elif r["kind"] == "Reply":
            if pending is not None:
                text += pending
                pending = None
            text += r["text"] + (harness.IM_END if r.get("finish") == "stop" else "")
    return text, pending


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``--json`` transcript: task, model, outcome, and per step the reply, the command,
    its output, exit code, timings and token counts."""
    out: dict[str, Any] = {
        "session_id": None,
        "task": None,
        "model": None,
        "steps": [],
        "finished": None,
        "messages": [],
    }
    steps: dict[int, dict[str, Any]] = {}

    def step(n: int) -> dict[str, Any]:
        if n not in steps:
            steps[n] = {"step": n}
            out["steps"].append(steps[n])
        return steps[n]

    for r in records:
        kind = r["kind"]
        if kind == "SessionStarted":
            out.update(session_id=r["session_id"], task=r["task"], model=r["model"])
        elif kind == "Appended":
            out["messages"].append({"role": "input", "step": r["step"], "text": r["text"]})
        elif kind == "Reply":
            out["messages"].append(
                {
                    "role": "assistant",
                    "step": r["step"],
                    "text": r["text"],
                    "finish": r.get("finish"),
                }
            )
            step(r["step"])["reply"] = r["text"]
        elif kind == "ToolCallProposed":
            step(r["step"]).update(proposed=r["command"], ignored=r["ignored"])
        elif kind == "FormatErrorRaised":
            step(r["step"])["format_error"] = r["message"]
        elif kind == "ApprovalAnswered":
            step(r["step"])["approval"] = r["answer"]
        elif kind == "CommandRejected":
            step(r["step"]).update(rejected=True, observation=r["observation"])
        elif kind == "CommandExecuted":
            res = r.get("result") or {}
            step(r["step"]).update(
                command=r["command"],
                observation=r["observation"],
                output=res.get("output") if isinstance(res, dict) else None,
                exit_code=res.get("exit_code") if isinstance(res, dict) else None,
                timed_out=res.get("timed_out") if isinstance(res, dict) else None,
                duration_s=r.get("duration_s"),
            )
        elif kind == "TurnStats":
            step(r["step"])["stats"] = {
                k: v for k, v in r.items() if k not in ("kind", "t", "step")
            }
        elif kind == "CheckpointTaken":
            step(r["step"])["checkpoint"] = r["checkpoint"]
        elif kind == "CheckpointFailed":
            step(r["step"])["checkpoint_error"] = r["message"]
        elif kind == "InstructionAdded":
            step(r["step"])["instruction"] = r["text"]
        elif kind == "ContextThinned":
            step(r["step"])["context_thinned"] = r["message"]
        elif kind == "AgentFinished":
            out["finished"] = {"reason": r["reason"], "message": r["message"], "steps": r["steps"]}
    return out


INTERRUPTED_OBSERVATION = (
    "(the session was interrupted before this command finished; it may have run partly "
    "or not at all)\n\n(exit_code=130)"
)


def resume_input(records: list[dict[str, Any]], instruction: str) -> tuple[str, str, int]:
    """What `Agent.resume` needs to continue a saved session with the user's
    ``instruction``: (conversation so far, what to append next, steps done).

    A session that died (``kill -9``, power loss) may end anywhere: mid-reply (the reply is
    lost and that step is generated again), after a tool call whose command never reported
    back (the model is told the command was interrupted, as a tool response, so its format
    stays the one it was trained on), or cleanly between turns.
    """
    conversation, pending = stream_text(records)
    replies = [r for r in records if r.get("kind") == "Reply"]
    steps_done = max((int(r.get("step") or 0) for r in replies), default=0)
    if pending is not None:
        gp = harness.GENERATION_PROMPT
        body = pending.removesuffix(gp)
        return conversation, body + harness.user_turn(instruction) + gp, steps_done
    last = replies[-1] if replies else {}
    closed = last.get("finish") == "stop"
    step = int(last.get("step") or 0)
    proposed = any(r.get("kind") == "ToolCallProposed" and r.get("step") == step for r in records)
    outcome = next(
        (
            r
            for r in reversed(records)
            if r.get("kind") in ("CommandExecuted", "CommandRejected") and r.get("step") == step
        ),
        None,
    )
    if proposed:
        # The command's result (or, when it never came back, the interruption) goes back as
        # the tool response the model waits for, then the user's instruction.
        observation = str(outcome["observation"]) if outcome else INTERRUPTED_OBSERVATION
        turn = harness.tool_response_turn(
            observation, model_closed_turn=closed, instruction=instruction
        )
    else:
        turn = harness.user_message_turn(instruction, model_closed_turn=closed)
    return conversation, turn, steps_done
