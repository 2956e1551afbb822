"""Process inspection without /proc (macOS has none), tested on Linux by forcing it.

The shell's input-wait detection, foreground-process and cwd tracking run
through psutil and ``ps`` when ``TMAX_PROCS=portable``; the existing shell
tests that depend on them must pass that way too."""

from __future__ import annotations

import os

from shell_support import rerun_shell_tests

from tmax_local.shell import PtyShell, procs


def test_backend_is_chosen_at_run_time(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TMAX_PROCS", "portable")
    assert procs.backend() == "portable"
    (tmp_path / "sub").mkdir()
    with PtyShell(tmp_path) as sh:
        sh.run("cd sub")
        assert procs.cwd_of(sh.pid) == str(tmp_path / "sub") == sh.cwd
        assert procs.cmdline(sh.pid).split(b"\0")[0].endswith(b"bash")
        r = sh.run("read line", timeout=2)
        assert r.waiting_for_input and r.timed_out
    monkeypatch.delenv("TMAX_PROCS")
    assert procs.backend() == ("proc" if os.path.exists("/proc/self/stat") else "portable")


def test_shell_tests_pass_without_proc(tmp_path) -> None:
    selection = (
        "input or read_ or password or getpass or cat_reads or cd_persists or exec_bash"
        " or kill_9_self or restart or interrupt or sudo or sleep"
    )
    rerun_shell_tests(tmp_path, selection, env={**os.environ, "TMAX_PROCS": "portable"})


# Constructs that need bash 4 or later (macOS ships 3.2).
_BASH4 = [
    r"declare -[AnlNu]",
    r"local -n",
    r"\$\{\w+(,,|\^\^|,|\^)\}",
    r"\bmapfile\b",
    r"\breadarray\b",
    r"\|&",
    r"&>>",
    r"\bcoproc\b",
    r";;&",
    r";&",
    r"\$BASHPID",
    r"\$\{\w+@[QEPAa]\}",
    r"\bwait -n\b",
    r"\$EPOCHSECONDS",
    r"\bshopt -s (globstar|lastpipe|autocd)",
]


def test_startup_text_stays_within_bash_3_2() -> None:
    import re

    from tmax_local.shell import pty_shell

    texts = [pty_shell._RCFILE, pty_shell._command_line("0" * 16, "/tmp/x").decode()]
    for text in texts:
        for pattern in _BASH4:
            assert re.search(pattern, text) is None, pattern


def test_bash_info_names_the_bash_that_runs(tmp_path) -> None:
    from tmax_local.shell.bashinfo import bash_info

    info = bash_info()
    assert info.path and info.major and info.major >= 3
    with PtyShell(tmp_path) as sh:
        assert sh.run('printf %s "$BASH_VERSION"').output == info.version
    assert bash_info(str(tmp_path)).describe() == "bash not found on PATH"
