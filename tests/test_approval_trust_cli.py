"""`tmax-local run` and a repository's `.tmax-local.toml`: its rules apply only once the
user trusts the file's exact contents (issue 9 §4). The CLI as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tmax_local.agent.parser import bash_reply

SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        TMAX_DATA_DIR=str(tmp_path / "data"),
        TMAX_CONFIG_DIR=str(tmp_path / "cfg"),
        TMAX_MODELS_DIR=str(tmp_path / "models"),
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_OFFLINE="1",
    )
    return e


def run(tmp_path: Path, env: dict[str, str], rules: list[str], *flags: str, answers: str = ""):
    work = tmp_path / "repo"
    work.mkdir(exist_ok=True)
    quoted = ", ".join(json.dumps(r) for r in rules)
    (work / ".tmax-local.toml").write_text(f"[approval]\nallow = [{quoted}]\n")
    script = tmp_path / "s.json"
    script.write_text(json.dumps([bash_reply("touch MARK"), SUBMIT]))
    proc = subprocess.run(
        [sys.executable, "-m", "tmax_local", "run", "Touch", "--model", f"script:{script}", *flags],
        input=answers,
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=120,
        check=False,
    )
    return proc, work


def test_untrusted_project_rules_are_ignored_with_a_notice(tmp_path, env):
    proc, work = run(tmp_path, env, ["touch *"], answers="r\n\n")
    assert "its allow rules are ignored" in proc.stdout and "--trust-project" in proc.stdout
    assert "? approve this command" in proc.stdout  # asked, and rejected
    assert not (work / "MARK").exists()


def test_trust_project_applies_them_and_shows_their_source(tmp_path, env):
    proc, work = run(tmp_path, env, ["touch *", "bash *"], "--trust-project")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "MARK").exists()
    assert "? approve this command" not in proc.stdout
    assert "allow 'touch *' (project)" in proc.stdout
    assert "'bash *' is never applied" in proc.stdout
    # remembered for these exact contents...
    (work / "MARK").unlink()
    proc, work = run(tmp_path, env, ["touch *", "bash *"], answers="")
    assert (work / "MARK").exists() and "ignored" not in proc.stdout
    # ...and asked again once the file changes
    (work / "MARK").unlink()
    proc, work = run(tmp_path, env, ["touch *", "bash *", "whoami"], answers="r\n\n")
    assert "ignored" in proc.stdout and not (work / "MARK").exists()


def test_always_allow_says_why_it_offers_only_the_exact_command(tmp_path, env):
    work = tmp_path / "plain"
    work.mkdir()
    (work / "f").write_text("x\n")
    script = tmp_path / "s2.json"
    script.write_text(json.dumps([bash_reply("sed -n 1p f"), SUBMIT]))
    proc = subprocess.run(
        [sys.executable, "-m", "tmax_local", "run", "Print", "--model", f"script:{script}"],
        input="l\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=120,
        check=False,
    )
    assert "a[l]ways allow `sed -n 1p f`" in proc.stdout
    assert "sed can run code given in its arguments" in proc.stdout
