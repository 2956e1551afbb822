"""The trust dialog for a project's rules (Textual Pilot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Label

from tmax_local.approval.store import read_project_rules
from tmax_local.tui.trust_screen import TrustScreen


def project(tmp_path: Path):
    (tmp_path / ".tmax-local.toml").write_text(
        '[approval]\nallow = ["ls *", "bash *"]\ndeny = ["rm *"]\n'
    )
    found = read_project_rules(tmp_path, trust_file=tmp_path / "trust.toml")
    assert found is not None
    return found


class Host(App[None]):
    def __init__(self, screen: TrustScreen) -> None:
        super().__init__()
        self.dialog = screen
        self.answers: list[bool | None] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.answers.append)


@pytest.mark.parametrize(
    ("keys", "answer"), [(["escape"], False), (["enter"], False), (["shift+tab", "enter"], True)]
)
async def test_the_dialog_lists_the_rules_and_defaults_to_no(tmp_path, keys, answer):
    app = Host(TrustScreen(project(tmp_path)))
    async with app.run_test() as pilot:
        await pilot.pause()
        shown = [str(label.render()) for label in app.screen.query(Label)]
        assert any("allow: ls *" in s for s in shown)
        assert any("deny:  rm *" in s for s in shown)
        assert any("refused (never applied): bash *" in s for s in shown)
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
    assert app.answers == [answer]
