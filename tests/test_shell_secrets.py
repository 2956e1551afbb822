"""§7 secrets stay out of the shell, §5 git defaults: precise names, /proc of the parent,
and the git-safe configuration every shell command gets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tmax_local.shell import PtyShell
from tmax_local.shell.env import GIT_SAFE_CONFIG, looks_secret, shell_environment

SECRETS = [
    ("DATABASE_URL", "postgres://app@db/app"),
    ("MYSQL_PWD", "x"),
    ("GH_PAT", "x"),
    ("SMTP_PASS", "x"),
    ("NPM_TOKEN", "x"),
    ("OPENAI_API_KEY", "x"),
    ("AWS_SECRET_ACCESS_KEY", "x"),
    ("AWS_SESSION_TOKEN", "x"),
    ("PGPASSWORD", "x"),
    ("SSH_AUTH_SOCK", "/tmp/agent"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/c.json"),
    ("SENTRY_DSN", "https://k@sentry.io/1"),
    ("SLACKTOKEN", "x"),
    ("my_db_password", "x"),
    ("HTTP_PROXY", "http://user:hunter2@proxy:3128"),  # a password in a URL
    ("SOMETHING", "ghp_0123456789abcdefghij"),  # a token by its well-known prefix
]
NOT_SECRETS = [
    ("GIT_AUTHOR_NAME", "A"),
    ("GIT_COMMITTER_EMAIL", "a@b"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("KEYBOARD_LAYOUT", "us"),
    ("PWD", "/x"),
    ("OLDPWD", "/"),
    ("XDG_SESSION_ID", "3"),
    ("PATH", "/usr/bin"),
    ("HOME", "/home/u"),
    ("HTTP_PROXY_PLAIN", "http://proxy:3128"),
    ("AUTHOR", "me"),
    ("LS_COLORS", "di=01;34"),
]


@pytest.mark.parametrize(("name", "value"), SECRETS, ids=[n for n, _ in SECRETS])
def test_secret_names_are_withheld(name: str, value: str) -> None:
    assert looks_secret(name, value)
    env, withheld = shell_environment({"PATH": "/usr/bin", name: value})
    assert name in withheld and name not in env


@pytest.mark.parametrize(("name", "value"), NOT_SECRETS, ids=[n for n, _ in NOT_SECRETS])
def test_ordinary_names_pass(name: str, value: str) -> None:
    assert not looks_secret(name, value)
    env, withheld = shell_environment({"PATH": "/usr/bin", name: value})
    assert name not in withheld and env[name] == value


_CHILD = textwrap.dedent(
    """
    import sys, tempfile
    from tmax_local.shell import PtyShell
    protect = sys.argv[1] == "protect"
    with PtyShell(tempfile.mkdtemp(), timeout=20, protect_parent=protect) as sh:
        out = sh.run(
            "tr '\\\\0' '\\\\n' < /proc/$PPID/environ | grep -c hunter2-value;"
            " echo \\"[$TMAX_TEST_TOKEN]\\""
        ).output
    print(out.replace("\\n", " ").strip())
    """
)


def _run_agent_process(mode: str) -> str:
    env = {**os.environ, "TMAX_TEST_TOKEN": "hunter2-value"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_shell_cannot_read_secret_from_parent_environ() -> None:
    """The attack first (unprotected parent: the shell reads the token back through
    /proc/$PPID/environ), then the defence (protect_parent=True: nothing)."""
    assert _run_agent_process("plain") == "1 []"
    assert _run_agent_process("protect") == "0 []"


def test_protect_process_in_a_child(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os
        from tmax_local.shell.secrets import protect_process, withheld_value
        p = protect_process(["TMAX_TEST_TOKEN", "NOT_SET_AT_ALL"])
        environ = open("/proc/self/environ", "rb").read()
        print(p.removed, p.blanked, p.non_dumpable, b"hunter2" in environ,
              "TMAX_TEST_TOKEN" in os.environ, withheld_value("TMAX_TEST_TOKEN"))
        """
    )
    env = {**os.environ, "TMAX_TEST_TOKEN": "hunter2"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "('TMAX_TEST_TOKEN',)",
        "('TMAX_TEST_TOKEN',)",
        "True",
        "False",
        "False",
        "hunter2",
    ]


# --------------------------------------------------------------------------- §5 git


def _nested_repo(root: Path, config: str) -> Path:
    sub = root / "sub"
    sub.mkdir()
    env = {**os.environ, "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=sub,
            check=True,
            capture_output=True,
            env=env,
        )

    git("init", "-q", ".")
    (sub / "a.txt").write_text("one\n")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    with open(sub / ".git" / "config", "a") as fh:
        fh.write(config + "\n")
    (sub / "a.txt").write_text("two\n")
    return sub


@pytest.mark.parametrize(
    ("name", "config", "command"),
    [
        ("fsmonitor", '[core]\n\tfsmonitor = "touch {M}; false"', "git status --short"),
        ("core_pager", '[core]\n\tpager = "touch {M}; cat"', "git log --oneline"),
        ("pager_log", '[pager]\n\tlog = "touch {M}; cat"', "git log --oneline"),
        ("hooks", "", "git commit -q --allow-empty -m x"),
        ("ssh_command", '[core]\n\tsshCommand = "touch {M}; false"', "git fetch -q ssh://x/y"),
    ],
)
def test_git_safe_config_neutralises_repo_programs(
    tmp_path: Path, name: str, config: str, command: str
) -> None:
    """Attack: a nested repository whose own config runs a program; the same command in
    the agent's shell must not run it (and, as the teeth, does without GIT_CONFIG_COUNT)."""
    marker = tmp_path / "MARKER"
    sub = _nested_repo(tmp_path, config.replace("{M}", str(marker)))
    if name == "hooks":
        hook = sub / ".git" / "hooks" / "pre-commit"
        hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
        hook.chmod(0o755)
    prefix = "git config user.name t; git config user.email t@t; "
    with PtyShell(sub, timeout=20) as sh:
        sh.run(prefix + command + " 2>/dev/null")
        assert not marker.exists(), f"{name}: the repository's program ran"
        sh.run("unset GIT_CONFIG_COUNT GIT_PAGER; " + command + " 2>/dev/null; true")
    assert marker.exists(), f"{name}: the payload should fire without the safe config"


def test_git_safe_config_is_visible_in_the_shell(tmp_path: Path) -> None:
    with PtyShell(tmp_path, timeout=20) as sh:
        out = sh.run("git config --list --show-scope | grep ^command").output
    for key, value in GIT_SAFE_CONFIG:
        assert f"command\t{key.lower()}={value}" in out
