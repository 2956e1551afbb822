"""The environment the agent's shell starts with."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# Names that look like they hold a credential.  Matched anywhere in the name,
# case-insensitively: GITHUB_TOKEN, OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY,
# PGPASSWORD, SSH_AUTH_SOCK, GOOGLE_APPLICATION_CREDENTIALS...
SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSW(?:OR)?D|PASSPHRASE|CREDENTIAL|AUTH|COOKIE|PRIVATE", re.IGNORECASE
)

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

# Variables that would make bash run someone else's start-up code or prompt.
_SHELL_STARTUP = {"BASH_ENV", "ENV", "PROMPT_COMMAND", "PS0", "PS1", "PS2", "PS4", "HISTFILE"}


def looks_secret(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


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
        if not allow_secrets and looks_secret(name):
            withheld.append(name)
            continue
        env[name] = value
    env.update(NONINTERACTIVE_DEFAULTS)
    env.setdefault("PATH", os.defpath)
    return env, sorted(withheld)
