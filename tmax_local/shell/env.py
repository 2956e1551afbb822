"""The environment the agent's shell starts with."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# Secret names, matched per component (the name split at "_", "-" and ".", upper-cased).
# A component that IS or ENDS WITH one of these marks a secret: GITHUB_TOKEN, PGPASSWORD,
# OPENAI_API_KEY, MYSQL_PWD, GH_PAT, SMTP_PASS, AWS_SECRET_ACCESS_KEY, SSH_AUTH_SOCK.
# Whole components only, so GIT_AUTHOR_NAME, TOKENIZERS_PARALLELISM and KEYBOARD are not.
_SECRET_ENDINGS = (
    "KEY", "KEYS", "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASS",
    "PWD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "CREDS", "COOKIE", "COOKIES",
)  # fmt: skip
# Components that mark a secret only when they are the whole component.
_SECRET_WORDS = frozenset({"AUTH", "PAT", "PRIVATE", "DSN", "DATABASE", "JWT", "OTP"})
# Shell bookkeeping that merely looks like a secret.
_NOT_SECRET = frozenset({"PWD", "OLDPWD"})
# Values that carry a credential whatever the name: URLs with a password
# (postgres://u:p@h), and tokens with well-known prefixes.
_SECRET_VALUE = re.compile(
    r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@"
    r"|^(?:gh[pousr]_|github_pat_|glpat-|sk-|sk_live_|rk_live_|xox[abposr]-|hf_|AKIA|ASIA"
    r"|npm_|pypi-|AIza)[A-Za-z0-9_\-]{8,}",
    re.IGNORECASE,
)
SECRET_NAME = re.compile(r"[_.\-]")

# Make tools behave non-interactively: no pagers, no editors, no prompts.
NONINTERACTIVE_DEFAULTS: dict[str, str] = {
    "TERM": "xterm-256color",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "SYSTEMD_PAGER": "cat",
    "GIT_EDITOR": ":",
    "GIT_TERMINAL_PROMPT": "0",
    "DEBIAN_FRONTEND": "noninteractive",
}

# git settings every command in the shell gets (through GIT_CONFIG_COUNT/KEY/VALUE, which
# beat every config file): a repository's own config cannot make a "read-only" git command
# run a program.  The user sees them with `env | grep GIT_CONFIG` and may change them; the
# approval gate then asks before anything runs unasked (the shell no longer matches how
# it started).  Drivers named in a repository's config (diff.<x>.textconv, filter.<x>.*,
# diff.external…) cannot be switched off this way: the gate reads the repository's
# config before git runs unasked (tmax_local/approval/live_git.py).
GIT_SAFE_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("core.askPass", ""),
    ("credential.helper", ""),
    ("core.sshCommand", "ssh"),
    ("safe.bareRepository", "explicit"),
    ("log.showSignature", "false"),
    ("protocol.ext.allow", "never"),
    ("uploadpack.packObjectsHook", ""),
)


GIT_SAFE_NOTICE = (
    "git in this shell ignores repository hooks, fsmonitor, pagers and credential helpers "
    "(see `env | grep GIT_CONFIG`)"
)


def git_safe_environment() -> dict[str, str]:
    """`GIT_SAFE_CONFIG` as ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``."""
    env = {"GIT_CONFIG_COUNT": str(len(GIT_SAFE_CONFIG))}
    for i, (key, value) in enumerate(GIT_SAFE_CONFIG):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


# Variables that would make bash run someone else's start-up code or prompt.
_SHELL_STARTUP = {"BASH_ENV", "ENV", "PROMPT_COMMAND", "PS0", "PS1", "PS2", "PS4", "HISTFILE"}


def looks_secret(name: str, value: str = "") -> bool:
    """True when variable ``name`` (with ``value``) looks like it holds a credential."""
    if name in _NOT_SECRET:
        return False
    for part in SECRET_NAME.split(name.upper()):
        if part in _SECRET_WORDS or part.endswith(_SECRET_ENDINGS):
            return True
    return bool(value) and _SECRET_VALUE.search(value) is not None


def shell_environment(
    base: Mapping[str, str] | None = None, *, allow_secrets: bool = False
) -> tuple[dict[str, str], list[str]]:
    """Return ``(env, withheld)``: the environment for the agent's shell and the
    sorted names of the variables left out because they look like secrets.

    ``base`` defaults to ``os.environ``.  The non-interactive defaults always
    win over ``base``.
    """
    source = os.environ if base is None else base
    env: dict[str, str] = {}
    withheld: list[str] = []
    for name, value in source.items():
        if name in _SHELL_STARTUP or name.startswith("BASH_FUNC_"):
            continue
        if not allow_secrets and looks_secret(name, value):
            withheld.append(name)
            continue
        env[name] = value
    env = {k: v for k, v in env.items() if not k.startswith("GIT_CONFIG_")}
    env.update(NONINTERACTIVE_DEFAULTS)
    env.update(git_safe_environment())
    env.setdefault("PATH", os.defpath)
    return env, sorted(withheld)
