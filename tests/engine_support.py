"""Helpers for the tests of a real engine (llama.cpp in process, or a server) driven by a
tiny random model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmax_local.agent import events as ev
from tmax_local.agent.harness import HarnessConfig
from tmax_local.agent.loop import Agent
from tmax_local.agent.protocols import ModelBackend
from tmax_local.agent.transcript import TranscriptWriter
from tmax_local.approval import Gate
from tmax_local.shell import PtyShell

# Forces a well-formed bash call out of a random model (llama.cpp allows only an
# end-of-generation token once the grammar is complete).
CALL_GRAMMAR = r"""
root ::= [a-z]{0,6} "\n\n<tool_call>\n<function=bash>\n<parameter=command>\n" cmd "\n</parameter>\n</function>\n</tool_call>"
cmd ::= "echo " [a-z]{1,6}
"""


def run_agent(
    engine: ModelBackend,
    workdir: Path,
    task: str,
    on_event: ev.EventCallback,
    **config: Any,
) -> ev.AgentFinished:
    """Run ``task`` with the real loop (``HarnessConfig(**config)``), a real PtyShell in
    ``workdir`` and the gate in auto mode; every event goes to ``on_event``, the transcript
    to ``workdir/t.jsonl``."""
    tw = TranscriptWriter(workdir / "t.jsonl")
    with PtyShell(workdir, timeout=30) as shell:
        agent = Agent(
            engine,
            shell,
            Gate("auto", cwd=workdir),
            config=HarnessConfig(**config),
            transcript=tw,
        )
        agent.subscribe(on_event)
        done = agent.run(task)
    tw.close()
    return done
