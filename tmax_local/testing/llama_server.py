"""Start llama.cpp's ``llama-server`` on 127.0.0.1 for tests and benchmarks.

The binary is built once from the llama.cpp sources vendored in the llama-cpp-python sdist
by ``scripts/build_llama_server.sh`` (CPU only) and cached; ``find_or_build`` returns it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build_llama_server.sh"


class BuildFailed(RuntimeError):
    pass


def find_or_build(*, build: bool = True, log: Path | None = None) -> Path:
    """The cached ``llama-server`` (``$TMAX_LLAMA_SERVER`` wins), building it if allowed."""
    env_path = os.environ.get("TMAX_LLAMA_SERVER")
    if env_path:
        return Path(env_path)
    if not BUILD_SCRIPT.is_file():
        raise BuildFailed(f"{BUILD_SCRIPT} is missing (not a source checkout)")
    cmd = ["bash", str(BUILD_SCRIPT)]
    env = dict(os.environ)
    if not build:
        env["TMAX_LLAMA_SERVER_CACHED_ONLY"] = "1"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if log is not None:
        log.write_text(out.stderr, encoding="utf-8")
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode != 0 or not path or not Path(path).is_file():
        tail = "\n".join(out.stderr.strip().splitlines()[-5:])
        raise BuildFailed(f"could not build llama-server (exit {out.returncode}): {tail}")
    return Path(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """A running ``llama-server``; use as a context manager (stops it on exit)."""

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        ctx: int = 4096,
        threads: int = 2,
        extra: list[str] | None = None,
        log: Path | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            str(binary),
            "-m", str(model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-c", str(ctx),
            "-np", "1",
            "-t", str(threads),
            "--no-warmup",
            *(extra or []),
        ]  # fmt: skip
        self.log_path = log
        self._log: Any = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 120.0) -> Self:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.proc.returncode}: {self.tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"llama-server did not become ready in {timeout:.0f} s: {self.tail()}")

    def tail(self, n: int = 20) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-n:])

    def kill(self) -> None:
        """SIGKILL (a crash, as far as clients can tell)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> Self:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()
