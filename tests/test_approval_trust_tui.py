"""The trust dialog for a project's rules (Textual Pilot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_support import wait_until
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


# --------------------------------------------------------------------------- in the app


def _app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **session):
    import json

    from tmax_local.agent.options import ModelOptions, SessionOptions
    from tmax_local.tui.app import TuiOptions, make_app

    monkeypatch.setenv("TMAX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TMAX_CONFIG_DIR", str(tmp_path / "config"))
    work = tmp_path / "work"
    work.mkdir()
    (work / ".tmax-local.toml").write_text('[approval]\nallow = ["ls *", "sh *"]\n')
    script = tmp_path / "script.json"
    script.write_text(json.dumps([]))
    opts = SessionOptions(model=ModelOptions(model=f"script:{script}"), cwd=work, **session)
    app = make_app(TuiOptions(session=opts))
    app.deterministic = True
    app.ram_probe = lambda: "1 GiB"
    return app, work


def _notes(app) -> str:
    return " ".join(str(n.render()) for n in app.reasoning.query(".note"))


@pytest.mark.parametrize("trust", [True, False])
async def test_the_app_asks_before_applying_project_rules(tmp_path, monkeypatch, trust):
    app, work = _app(tmp_path, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TrustScreen), "the trust dialog")
        await pilot.press(*(["shift+tab", "enter"] if trust else ["escape"]))
        await wait_until(
            pilot, lambda: not isinstance(app.screen, TrustScreen), "the dialog closes"
        )
        found = read_project_rules(work)
        assert found is not None and found.trusted is trust
        if trust:
            await wait_until(pilot, lambda: "'ls *' (project)" in _notes(app), "the active rules")
        else:
            await wait_until(pilot, lambda: "ignored" in _notes(app), "the notice")
        assert "'sh *' (project)" not in _notes(app)  # a project can never allow a shell


async def test_trust_project_flag_trusts_without_asking(tmp_path, monkeypatch):
    app, work = _app(tmp_path, monkeypatch, trust_project=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "'ls *' (project)" in _notes(app), "the active rules")
        assert not isinstance(app.screen, TrustScreen)
    found = read_project_rules(work)
    assert found is not None and found.trusted
