"""The TMax agent: harness, model backends, the loop and its events (no Textual here).

Nothing is imported or loaded by this package itself; import the modules you need::

    from tmax_local.agent.resolve import resolve_model, load_backend
    from tmax_local.agent.engine import EngineOptions
    from tmax_local.agent.loop import Agent
    from tmax_local.agent.transcript import TranscriptWriter
    from tmax_local.approval import Gate
    from tmax_local.shell import PtyShell

    model = load_backend(resolve_model("allenai/tmax-2b", "Q4_K_M"), EngineOptions(ctx=32768))
    with PtyShell(workdir, timeout=120) as shell:
        agent = Agent(model, shell, Gate.load(workdir, "ask"), approver=my_approver,
                      transcript=TranscriptWriter(path))
        agent.subscribe(on_event)          # events.py: what a UI renders
        finished = agent.run("the task")   # blocks; stop()/queue_instruction() from elsewhere

Modules: ``events`` (the UI contract), ``protocols`` (ModelBackend, Shell, Approver,
ApprovalGate), ``harness`` (exact prompts, stream framing, TMax's evaluation numbers),
``options`` (every user setting, its default and flag), ``parser`` (reply → command),
``engine`` (llama.cpp, append-only token stream), ``scripted`` (replays raw replies),
``loop`` (Agent), ``transcript`` (JSON lines, resume, --json), ``resolve`` (--model; must
it be fetched first?), ``cli_run`` (`tmax-local run`).
"""

__all__ = [  # submodules: import the one you need (this package imports nothing)
    "cli_run",
    "engine",
    "events",
    "harness",
    "loop",
    "options",
    "parser",
    "protocols",
    "resolve",
    "scripted",
    "transcript",
]
