"""The Textual app (the only package that imports Textual).

Entry points: `tmax_local.tui.launch` (CLI: `add_arguments`, `run`) and
`tmax_local.tui.app.make_app` (the one factory used by the CLI and the tests).

Modules: ``app`` (the app, its options, drawing agent events), ``session`` (model, shell,
agent, transcript: no Textual), ``replay`` (a saved session into the panes), widgets
(``reasoning``, ``terminal``, ``approval_bar``, ``status``, ``screens``), ``pump`` (thread →
UI hand-offs), ``export``, ``launch``. Imports run one way: app → session / widgets → core.
"""

__all__ = [
    "app",
    "approval_bar",
    "export",
    "launch",
    "pump",
    "reasoning",
    "replay",
    "screens",
    "session",
    "status",
    "terminal",
]
