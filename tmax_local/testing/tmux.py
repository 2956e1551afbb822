"""Drive the real `tmax-local` command in a private tmux server, as a person would.

Used by the end-to-end tests and the TUI benchmark: keys go in with send-keys, the screen
comes back with capture-pane. Needs the `tmux` binary.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path


def tmax_argv() -> list[str]:
    """How to start `tmax-local` with this interpreter (its console script, else `-m`)."""
    script = Path(sys.executable).with_name("tmax-local")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tmax_local"]


class TmuxSession:
    """One private tmux server running one program in a fixed-size window."""

    def __init__(
        self, argv: list[str], env: dict[str, str], cwd: Path, size: tuple[int, int] = (100, 30)
    ) -> None:
        self.socket = f"tmax-{uuid.uuid4().hex[:8]}"
        cmd = " ".join(
            shlex.quote(a) for a in ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
        )
        self.started = time.perf_counter()
        self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "t",
            "-x", str(size[0]), "-y", str(size[1]), "-c", str(cwd), cmd,
        )  # fmt: skip
        self.tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return proc.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def text(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def wait_for(
        self, predicate: Callable[[str], bool], what: str, timeout: float = 60.0, poll: float = 0.1
    ) -> str:
        """Poll the screen until ``predicate`` holds; AssertionError with the screen if not."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}")
            time.sleep(poll)  # polling interval of a condition wait, not a timed assertion

    def pane_dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", "t", "#{pane_dead}").strip() == "1"

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())

    def close(self) -> None:
        self.tmux("kill-server")
