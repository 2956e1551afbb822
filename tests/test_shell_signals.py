"""The shell behaves like one opened in a terminal, whatever started tmax-local.

Python ignores SIGPIPE; a job started in the background by a non-interactive
shell ignores SIGINT and SIGQUIT; a parent may block signals.  None of that may
leak into the agent's shell (issue 11)."""

from __future__ import annotations

import os
import signal

import pytest
from shell_support import rerun_shell_tests

from tmax_local.shell import PtyShell

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _signal_state(sh: PtyShell) -> dict[str, int]:
    out = sh.run("grep -E '^Sig(Ign|Blk):' /proc/self/status").output
    return {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines()}


@pytest.mark.parametrize("mode", ["off", "workspace"])
def test_broken_pipe_ends_quietly_with_141(tmp_path, mode) -> None:
    if mode == "workspace":
        from tmax_local.shell import sandbox

        if not sandbox.detect().available:
            pytest.skip("no sandbox here")
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # Python's own default
    with PtyShell(tmp_path, sandbox_mode=mode) as sh:
        r = sh.run('yes | head -1; echo "${PIPESTATUS[@]}"')
        assert r.output == "y\n141 0\n"
        r = sh.run("seq 1 1000000 | head -2")
        assert r.output == "1\n2\n" and r.exit_code == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_shell_starts_clean_when_the_parent_ignores_and_blocks(tmp_path) -> None:
    ignored = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)
    saved = {sig: signal.getsignal(sig) for sig in ignored}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR1})
    try:
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)
        sh = PtyShell(tmp_path).start()  # forked from this thread: inherits all of it
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    try:
        assert _signal_state(sh) == {"SigIgn": 0, "SigBlk": 0}  # a child of bash
        r = sh.run("sleep 30", timeout=1)  # the timeout path needs SIGINT to work
        assert r.timed_out and r.duration_s < 5 and not r.restarted
        assert sh.run('yes | head -1; echo "${PIPESTATUS[@]}"').output == "y\n141 0\n"
    finally:
        sh.close()


_LAUNCH_IGNORING = """
import os, signal, sys
for sig in (signal.SIGINT, signal.SIGQUIT):
    signal.signal(sig, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGQUIT, signal.SIGTERM})
os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]])
"""


def test_interrupt_tests_pass_when_launched_in_the_background(tmp_path) -> None:
    """As `tmax-local run ... &` from a script would be: SIGINT/SIGQUIT ignored and,
    for good measure, blocked.  The interrupt and timeout tests must still pass."""
    selection = "interrupt or default_timeout or sleep_past_timeout or endless_through_pipeline"
    proc = rerun_shell_tests(tmp_path, selection, launcher=["-c", _LAUNCH_IGNORING])
    assert "failed" not in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
