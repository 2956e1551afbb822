"""A saved session (its transcript records) drawn into the reasoning pane and status bar.

Receives only the widgets it draws into; the records are the JSON-lines dicts of
`tmax_local.agent.transcript` (``kind`` is the event's class name there).
"""

from __future__ import annotations

from typing import Any

from tmax_local.tui.reasoning import ReasoningPane
from tmax_local.tui.status import StatusBar

__all__ = ["show_records"]


def show_records(
    records: list[dict[str, Any]], reasoning: ReasoningPane, status: StatusBar
) -> None:
    """Draw a saved session, read-only."""
    for r in records:
        kind = r.get("kind")
        step = int(r.get("step") or 0)
        if kind == "SessionStarted":
            reasoning.add_task(str(r.get("task", "")))
        elif kind == "Reply":
            reasoning.step_view(step).set_reasoning(str(r.get("text", "")))
        elif kind == "ToolCallProposed":
            reasoning.step_view(step).set_command(str(r.get("command", "")))
        elif kind == "CommandRejected":
            reasoning.step_view(step).set_outcome(
                f"rejected: {r.get('observation', '')}", good=False
            )
        elif kind == "CommandExecuted":
            res = r.get("result") or {}
            code = res.get("exit_code") if isinstance(res, dict) else None
            view = reasoning.step_view(step)
            if view.command != r.get("command"):
                view.set_command(str(r.get("command", "")), "(edited)")
            view.set_outcome(f"exit {code}", good=code == 0)
        elif kind == "InstructionAdded":
            reasoning.add_note(f"instruction added: {r.get('text', '')}")
        elif kind == "AgentFinished":
            reasoning.add_note(f"finished ({r.get('reason')}): {r.get('message', '')}")
        elif kind == "TurnStats":
            status.update_info(step=step, context_used=int(r.get("context_used") or 0))
