"""The Textual app (the only package that imports Textual).

Entry points: `tmax_local.tui.launch` (CLI: `add_arguments`, `run`) and
`tmax_local.tui.app.make_app` (the one factory used by the CLI and the tests).
"""
