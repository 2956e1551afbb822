"""`tmax-local run` and a repository's `.tmax-local.toml`: its rules apply only once the
user trusts the file's exact contents (issue 9 §4). The CLI as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import run_cli

from tmax_local.agent.parser import bash_reply

SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")


def run(tmp_path: Path, env: dict[str, str], rules: list[str], *flags: str, answers: str = ""):
    work = tmp_path / "repo"
    work.mkdir(exist_ok=True)
    quoted = ", ".join(json.dumps(r) for r in rules)
    (work / ".tmax-local.toml").write_text(f"[approval]\nallow = [{quoted}]\n")
    script = tmp_path / "s.json"
    script.write_text(json.dumps([bash_reply("touch MARK"), SUBMIT]))
    args = ["run", "Touch", "--model", f"script:{script}", *flags]
    return run_cli(args, env, work, answers, timeout=120), work


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
    proc = run_cli(["run", "Print", "--model", f"script:{script}"], env, work, "l\n", timeout=120)
    assert "a[l]ways allow `sed -n 1p f`" in proc.stdout
    assert "sed can run code given in its arguments" in proc.stdout
