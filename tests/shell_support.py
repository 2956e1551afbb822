"""Helpers for the shell tests: re-running a selection of them in a fresh pytest process
(another process backend, signals ignored by the launcher)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rerun_shell_tests(
    tmp_path: Path,
    selection: str,
    *,
    launcher: Sequence[str] = ("-m", "pytest"),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the tests of test_shell.py and test_shell_adversarial.py that ``-k selection``
    picks, as ``python LAUNCHER ...`` in the repository with ``env`` (None: this one's);
    assert that they passed."""
    argv = [
        sys.executable,
        *launcher,
        "tests/test_shell.py",
        "tests/test_shell_adversarial.py",
        "-k",
        selection,
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--basetemp",
        str(tmp_path / "inner"),
    ]
    proc = subprocess.run(
        argv,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout, tail
    return proc
