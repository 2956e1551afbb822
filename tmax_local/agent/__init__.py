"""The TMax agent: harness, model backends, the loop and its events (no Textual here).

Public entry points (imported lazily by users, nothing is loaded here):
- ``tmax_local.agent.events``: the events a UI renders.
- ``tmax_local.agent.protocols``: ModelBackend, Shell, Approver.
- ``tmax_local.agent.loop.Agent``: the loop.
- ``tmax_local.agent.resolve.resolve_model``: ``--model`` → a loadable backend spec.
"""
