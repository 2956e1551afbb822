"""The escape suite as a user runs it: `tmax-local run --approve auto` with a scripted model,
every question answered "approve" (a wrong approval is what the sandbox is for)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import isolated_env, run_cli

from tmax_local.agent.parser import bash_reply
from tmax_local.shell import sandbox as sb

SUPPORT = sb.detect()
SUBMIT = bash_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
SECRET = "FAKE-PRIVATE-KEY-tmax-cli"

# Each escape writes a marker outside the project (the project's parent, $HOME, outside/).
ESCAPES = [
    "echo pwned > ~/home-marker",
    "touch ../parent-marker",
    "ln -s ../outside link && echo pwned > link/link-marker",
    "echo pwned > m && mv m ../mv-marker",
    "echo pwned > c && cp c ../cp-marker",
    "echo pwned | tee ../tee-marker",
    "echo pwned | dd of=../dd-marker status=none",
    f"{sys.executable} -c \"open('../py-marker', 'w').write('pwned')\"",
    "(sleep 0.2; echo pwned > ../bg-marker) & wait",
    "nohup sh -c 'echo pwned > ../nohup-marker' >/dev/null 2>&1; setsid sh -c 'touch ../setsid-marker'; sleep 0.3",
    "exec bash",
    "touch ../after-exec-marker",
    "kill -9 $$",
    "touch ../after-restart-marker",
    "cat ~/.ssh/id_rsa > stolen.txt; cat ~/.ssh/id_rsa",
]
CONTROLS = [
    "echo data > inside.txt && mkdir -p d && cp inside.txt d/ && mv d/inside.txt d/moved.txt",
    'echo tmp > "$TMPDIR/t" && cat "$TMPDIR/t"',
    "git init -q . && git -c user.name=t -c user.email=t@e add inside.txt"
    " && git -c user.name=t -c user.email=t@e commit -qm one && echo committed",
]


def _run(
    tmp_path: Path,
    sandbox: str | None,
    commands: list[str] | None = None,
    approve: str = "auto",
    answers: str = "a\n" * 100,
    extra: list[str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    project = tmp_path / "project"
    home = tmp_path / "home"
    for d in (project, home / ".ssh", tmp_path / "outside"):
        d.mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(SECRET + "\n")
    script = tmp_path / "script.json"
    if commands is None:
        commands = ESCAPES + CONTROLS + ["echo still-alive"]
    replies = [bash_reply(c) for c in commands] + [SUBMIT]
    script.write_text(json.dumps(replies))
    env = isolated_env(tmp_path, HOME=str(home))
    args = ["run", "escape", "--model", f"script:{script}"]
    args += ["--approve", approve, "--max-steps", str(len(replies) + 1)]
    if sandbox is not None:
        args += ["--sandbox", sandbox]
    args += extra or []
    args += ["--json", str(tmp_path / "run.json")]
    return run_cli(args, env, project, answers, timeout=300), tmp_path


def _markers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*-marker") if "project" not in p.parts)


@pytest.mark.skipif(SUPPORT.mechanism != "landlock", reason="needs Landlock")
def test_run_workspace_sandbox_blocks_every_escape(tmp_path: Path) -> None:
    proc, root = _run(tmp_path, "workspace")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "sandbox workspace" in proc.stdout.split("\n\n")[0] or "sandbox workspace" in proc.stdout
    assert _markers(root) == []
    assert SECRET not in proc.stdout and SECRET not in (root / "project" / "stolen.txt").read_text()
    assert "[sandbox] write to" in proc.stdout
    assert "committed" in proc.stdout and "still-alive" in proc.stdout
    assert (root / "project" / "d" / "moved.txt").read_text() == "data\n"


def test_run_sandbox_off_lets_them_through(tmp_path: Path) -> None:
    proc, root = _run(tmp_path, "off")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert len(_markers(root)) == 13, _markers(root)
    assert SECRET in (root / "project" / "stolen.txt").read_text()


@pytest.mark.skipif(SUPPORT.mechanism != "landlock", reason="needs Landlock")
@pytest.mark.parametrize(
    ("approve", "expected"), [("auto", "sandbox workspace"), ("ask", "sandbox off")]
)
def test_default_follows_the_approval_mode(tmp_path: Path, approve: str, expected: str) -> None:
    proc, root = _run(tmp_path, None, ["touch ../default-marker"], approve=approve)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    header = proc.stdout.split("── step 1")[0]
    assert expected in header
    assert (root / "default-marker").exists() is (expected == "sandbox off")


@pytest.mark.skipif(SUPPORT.mechanism != "landlock", reason="needs Landlock")
def test_answer_u_runs_one_command_unsandboxed(tmp_path: Path) -> None:
    commands = ["touch ../u-marker", "touch ../second-marker"]
    proc, root = _run(tmp_path, "workspace", commands, approve="ask", answers="u\na\n")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "[u]nsandboxed" in proc.stdout and "ran outside the sandbox" in proc.stdout
    assert (root / "u-marker").exists() and not (root / "second-marker").exists()


def test_config_file_sets_the_sandbox_and_flags_win(tmp_path: Path, monkeypatch) -> None:
    import argparse

    from tmax_local.agent.options import SessionOptions, add_session_arguments
    from tmax_local.errors import ConfigError

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.toml").write_text('sandbox = "read-only"\nallow-network = true\n')
    monkeypatch.setenv("TMAX_CONFIG_DIR", str(cfg))
    parser = argparse.ArgumentParser()
    add_session_arguments(parser)
    opts = SessionOptions.from_args(parser.parse_args([]))
    assert (opts.sandbox, opts.allow_network) == ("read-only", True)
    opts = SessionOptions.from_args(parser.parse_args(["--sandbox", "off"]))
    assert opts.sandbox == "off"
    (cfg / "config.toml").write_text("sandbx = 'off'\n")
    with pytest.raises(ConfigError, match="unknown setting 'sandbx'"):
        add_session_arguments(argparse.ArgumentParser())
    (cfg / "config.toml").write_text('sandbox = "everything"\n')
    parser = argparse.ArgumentParser()
    add_session_arguments(parser)
    bad = SessionOptions.from_args(parser.parse_args([]))
    with pytest.raises(ConfigError, match="unknown sandbox mode 'everything'"):
        bad.sandbox_mode(allow_rules=False)


@pytest.mark.skipif(SUPPORT.mechanism != "landlock", reason="needs Landlock")
def test_extra_writable_dirs(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    commands = ["echo cached > ../cache/pip-marker", "touch ../elsewhere-marker"]
    proc, root = _run(
        tmp_path, "workspace", commands, extra=["--sandbox-writable", f"{cache}:/nonexistent"]
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (cache / "pip-marker").read_text() == "cached\n"
    assert not (root / "elsewhere-marker").exists()
