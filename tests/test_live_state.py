"""The state snapshot and its readers (tmax_local/shell/state.py, approval/live*.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmax_local.approval import analyze
from tmax_local.approval.live_git import git_reasons
from tmax_local.shell import PtyShell
from tmax_local.shell.state import SnapshotError, parse_snapshot, search_path


@pytest.fixture
def shell(tmp_path):
    with PtyShell(tmp_path, timeout=20) as sh:
        yield sh


def test_fresh_shell_has_no_changes(shell) -> None:
    live = shell.live_state()
    assert live.changes() == []
    assert not live.now.aliases_on
    assert {"__tmax_done", "__tmax_pre", "__tmax_snap"} <= set(live.now.functions)
    assert "echo" in live.now.builtins and not live.now.disabled


def test_snapshot_sees_each_kind_of_state(shell, tmp_path) -> None:
    shell.run(
        "f() { :; }; export -f f; shopt -s expand_aliases; alias ll='ls -l'; "
        "trap 'true' DEBUG; enable -n echo; export GIT_PAGER=less; CDPATH=/tmp"
    )
    live = shell.live_state()
    now = live.now
    assert now.functions["f"] is True and now.aliases == ("ll",) and now.aliases_on
    assert "echo" in now.disabled
    assert now.variables["GIT_PAGER"].value == "less" and "x" in now.variables["GIT_PAGER"].attrs
    text = "\n".join(live.changes())
    for expected in ("aliases", "trap", "exported function", "$GIT_PAGER", "$CDPATH", "enable -n"):
        assert expected in text


def test_user_typing_forces_a_refresh(shell, tmp_path) -> None:
    flag = tmp_path / "typed"
    shell.run("true")
    shell.send_input(f"g() {{ :; }}; touch '{flag}'\n".encode())
    for _ in range(200):
        if flag.exists():
            break
        import time

        time.sleep(0.02)
    assert "g" in shell.live_state().now.functions


def test_stale_or_forged_snapshots_are_refused(shell) -> None:
    shell.run("true")
    path = Path(shell._state_file())
    data = path.read_bytes()
    assert parse_snapshot(data, token=shell._state_token)
    with pytest.raises(SnapshotError, match="stale"):
        parse_snapshot(data, token="0" * 16)
    with pytest.raises(SnapshotError):
        parse_snapshot(data[: len(data) // 2])
    with pytest.raises(SnapshotError):
        parse_snapshot(b"")
    # a command that writes its own "snapshot" is overwritten by the real one
    shell.run(f"printf 'tmax-state-1' > {path}; h() {{ :; }}")
    assert "h" in shell.live_state().now.functions


def test_hash_table_is_flushed_after_each_command(shell) -> None:
    out = shell.run("hash -p /bin/false ls; hash -l").output
    assert "/bin/false" in out
    assert "/bin/false" not in shell.run("hash -l").output


def test_user_options_survive_the_epilogue(shell) -> None:
    shell.run("set -u; shopt -s nullglob")
    out = shell.run("echo $-; shopt nullglob expand_aliases inherit_errexit").output
    assert "u" in out.splitlines()[0]
    assert "nullglob\ton" in out.replace(" ", "")
    assert "expand_aliases\toff" in out.replace(" ", "")
    assert "inherit_errexit\toff" in out.replace(" ", "")


def test_search_path_matches_bash(shell, tmp_path) -> None:
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "bin" / "notexec").write_text("x")
    path = f"/nonexistent:{tmp_path}/bin:/usr/bin"
    found = search_path("tool", path, tmp_path)
    assert found is not None and found[0] == tool
    assert found[1] == ("/nonexistent", f"{tmp_path}/bin")
    assert search_path("notexec", path, tmp_path) is None
    out = shell.run(f"PATH={path}; type -P tool; type -P notexec; type -P ls").output.split()
    # bash falls back to a non-executable file (running it fails: permission denied)
    assert out[0] == str(tool) and out[1].endswith("/notexec") and out[2].endswith("/ls")


@pytest.mark.parametrize(
    ("config", "flagged"),
    [
        ("[core]\n\trepositoryformatversion = 0\n\tbare = false", False),
        (
            '[remote "origin"]\n\turl = https://x/y\n\tfetch = +refs/heads/*:refs/remotes/origin/*',
            False,
        ),
        ('[branch "main"]\n\tremote = origin\n\tmerge = refs/heads/main', False),
        ("[core]\n\tfsmonitor = true\n\tpager = less\n\thooksPath = x", False),  # overridden
        ("[pager]\n\tlog = less", False),  # GIT_PAGER wins
        ('[diff "x"]\n\ttextconv = evil', True),
        ('[filter "x"]\n\tclean = evil', True),
        ("[diff]\n\texternal = evil", True),
        ("[include]\n\tpath = ../x", True),
        ('[includeIf "gitdir:/"]\n\tpath = ../x', True),
        ("[alias]\n\tst = !evil", True),
        ("[core.x]\n\tfoo = 1", True),
        ("[broken", True),
        ("[core]\n\tcompression = 1 ; comment\n# comment\n\tabbrev = 8", False),
    ],
)
def test_repository_config_check(tmp_path, config: str, flagged: bool) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(config + "\n")
    part = analyze("git status", tmp_path).parts[0]
    assert bool(git_reasons(part, str(tmp_path))) is flagged


def test_git_dir_options_ask(tmp_path) -> None:
    part = analyze("git --git-dir=/x log", tmp_path).parts[0]
    assert git_reasons(part, str(tmp_path))
    assert git_reasons(analyze("git status", tmp_path).parts[0], str(tmp_path)) == []


def test_gate_takes_the_shell_at_creation_too(shell, tmp_path) -> None:
    from tmax_local.approval import Approve, Gate, Reject
    from tmax_local.approval.rules import Rule, RuleSet

    rules = RuleSet().with_rule(Rule.parse("ls *"), "allow")
    gate = Gate("ask", rules, cwd=tmp_path, live=shell)
    assert gate.review("ls", lambda _r: Reject()).run
    shell.run("ls() { :; }")
    asked = []
    verdict = gate.review("ls", lambda r: (asked.append(r.reasons), Approve())[1])
    assert verdict.approved_by == "user" and "shell function" in asked[0][0]
    # without a shell, only the text is judged (as before)
    assert Gate("ask", rules, cwd=tmp_path).review("ls", lambda _r: Reject()).run
