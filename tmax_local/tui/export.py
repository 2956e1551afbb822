"""Export a session transcript (JSON lines, `tmax_local.agent.transcript`) as Markdown."""

from __future__ import annotations

from typing import Any

from tmax_local.agent.transcript import summarize
from tmax_local.tui.reasoning import visible_reasoning


def _fence(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def session_markdown(records: list[dict[str, Any]]) -> str:
    """A readable report of a session: task, then per step reasoning, command, output."""
    s = summarize(records)
    out = [f"# tmax-local session {s.get('session_id') or ''}".rstrip(), ""]
    if s.get("model"):
        out += [f"Model: `{s['model']}`", ""]
    if s.get("task"):
        out += ["## Task", "", s["task"], ""]
    for step in s["steps"]:
        out += [f"## Step {step['step']}", ""]
        reasoning = visible_reasoning(step.get("reply") or "")
        if reasoning.strip():
            out += [reasoning.strip(), ""]
        if step.get("instruction"):
            out += [f"> Instruction from the user: {step['instruction']}", ""]
        if step.get("format_error"):
            out += ["*No valid bash call (format error sent back).*", ""]
        proposed = step.get("proposed")
        ran = step.get("command")
        if proposed is not None:
            out += ["Proposed:", "", _fence(proposed, "bash"), ""]
        if step.get("rejected"):
            out += [f"**Rejected:** {step.get('observation', '')}", ""]
        elif ran is not None:
            if proposed is not None and ran != proposed:
                out += ["Edited by the user and run as:", "", _fence(ran, "bash"), ""]
            out += [
                f"Exit code {step.get('exit_code')}"
                + (" (timed out)" if step.get("timed_out") else "")
                + ":",
                "",
            ]
            out += [_fence(step.get("output") or "(no output)"), ""]
        if step.get("context_thinned"):
            out += [f"*{step['context_thinned']}*", ""]
    fin = s.get("finished")
    if fin:
        out += ["## Finished", "", f"{fin['reason']}: {fin['message']} ({fin['steps']} steps)", ""]
    return "\n".join(out).rstrip() + "\n"
