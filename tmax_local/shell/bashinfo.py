"""Which bash the agent's shell runs, and its version (for `doctor` and bug reports).

The shell takes the first ``bash`` on the shell's ``PATH``: on macOS that is a
newer Homebrew/MacPorts bash when one is installed ahead of ``/bin/bash``
(3.2).  The start-up file and the command line the shell types stay within
bash 3.2's features, so either works (tests/test_shell_portable.py checks the
text; bash 3.2 itself is not available to run here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class BashInfo:
    path: str | None
    version: str | None  # e.g. "5.2.21(1)-release"

    @property
    def major(self) -> int | None:
        if not self.version:
            return None
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else None

    def describe(self) -> str:
        if self.path is None:
            return "bash not found on PATH"
        return f"{self.path} {self.version or '(version unknown)'}"


def find_bash(path: str | None = None) -> str | None:
    """The bash the shell would start for ``PATH=path`` (default: this process's)."""
    return shutil.which("bash", path=path if path is not None else os.environ.get("PATH"))


def bash_info(path: str | None = None) -> BashInfo:
    bash = find_bash(path)
    if bash is None:
        return BashInfo(None, None)
    try:
        out = subprocess.run(
            [bash, "--norc", "--noprofile", "-c", 'printf %s "$BASH_VERSION"'],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return BashInfo(bash, out or None)
