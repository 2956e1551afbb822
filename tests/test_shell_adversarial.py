"""Adversarial commands against the real PTY bash: every one must come back with
the right exit code and flags, and leave no stray process behind.

Each case is one named test (the id says what it proves).  Timeouts are short:
1-2 s for commands that are meant to be stopped, 20 s (never reached) for the
others.  After each command we check that the shell has no live child left
(unless the case starts background jobs on purpose), and after ``close()``
that nothing at all is left in any session the shell ever had.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import pytest

from tmax_local.shell import (
    AltScreenChanged,
    CommandResult,
    InputWaitSuspected,
    Output,
    PtyShell,
    ShellRestarted,
    procs,
)

# A failure in a shell thread (reader, worker) fails the test.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

STOP = 1.5  # timeout for commands that must be stopped
LONG = 20.0  # timeout for commands that must finish by themselves
GRACE = 0.3  # kill_grace between SIGINT, SIGTERM and SIGKILL


@dataclass
class Case:
    id: str
    command: str
    exit_code: int
    timeout: float = LONG
    output: str | None = None  # exact expected output
    contains: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    check: Callable[[CommandResult], bool] | None = None
    timed_out: bool = False
    restarted: bool = False
    waiting: bool | None = None  # None: don't care
    alt_screen: bool | None = None
    answer: bytes | None = None  # typed once an input wait is suspected
    background: bool = False  # leaves jobs running on purpose (cleaned by close)
    then: tuple[str, str] | None = None  # follow-up command and its exact output
    needs: str | None = None  # a binary the case needs
    skip_if: str | None = None  # a command whose success makes the case meaningless here
    events: tuple[type, ...] = ()  # event types that must have been published
    setup: str | None = None  # run first (must exit 0)


def _x(n: int) -> str:
    return "x" * n


CASES = [
    # -- exit codes ---------------------------------------------------------
    Case("exit_code_0_echo", "echo hello", 0, output="hello\n"),
    Case("exit_code_1_false", "false", 1, output=""),
    Case(
        "exit_code_2_syntax_error",
        "if then fi",
        2,
        contains=("syntax error",),
        absent=("tmax-shell",),
    ),
    Case(
        "exit_code_2_unbalanced_quote_is_not_a_hang",
        'echo "unterminated',
        2,
        contains=("unexpected EOF",),
    ),
    Case(
        "exit_code_127_missing_command",
        "no_such_command_tmax_xyz",
        127,
        contains=("command not found",),
    ),
    Case(
        "exit_code_126_not_executable",
        "printf 'echo hi\\n' > noexec.sh; chmod a-x noexec.sh; ./noexec.sh",
        126,
        contains=("Permission denied",),
    ),
    Case(
        "exit_code_130_child_killed_by_sigint",
        "sh -c 'kill -INT $$'; echo not-reached",
        130,
        absent=("not-reached",),
    ),
    Case("exit_code_42_from_subshell", "(exit 42)", 42),
    Case("exit_code_148_stopped_job_returns_prompt", "sh -c 'kill -TSTP $$'", 148, background=True),
    Case("exit_code_pipefail", "set -o pipefail; false | true", 1),
    Case(
        "exit_code_set_u_unbound_variable",
        "set -u; echo $TMAX_UNDEFINED_VAR; echo after",
        1,
        contains=("unbound variable",),
        absent=("after",),
        then=("set +u; echo ok", "ok\n"),
    ),
    # -- shapes of commands --------------------------------------------------
    Case(
        "heredoc_quoted_delimiter_is_literal",
        "cat <<'EOF'\n$HOME `date`\nEOF",
        0,
        output="$HOME `date`\n",
    ),
    Case(
        "heredoc_expands_variables",
        "NAME=world\ncat <<EOF\nhello $NAME\nEOF",
        0,
        output="hello world\n",
    ),
    Case(
        "heredoc_dash_strips_tabs_and_trailing_comment",
        "cat <<-EOF\n\tindented\n\tEOF\n# done",
        0,
        output="indented\n",
    ),
    Case(
        "heredoc_into_file_then_read",
        "cat > hd.txt <<'EOF'\nline one\nline two\nEOF\nwc -l < hd.txt",
        0,
        output="2\n",
    ),
    Case(
        "multiline_with_trailing_comment", "echo a\necho b  # trailing comment", 0, output="a\nb\n"
    ),
    Case("only_a_comment", "# nothing to do", 0, output=""),
    Case("empty_command", "", 0, output=""),
    Case("whitespace_only_command", "  \t \n  ", 0, output=""),
    Case("nul_byte_inside_command", "echo a\x00b", 0, output="ab\n"),
    Case("return_at_top_level", "return 3", 3, output="", then=("echo ok", "ok\n")),
    Case("no_final_newline_in_output", "printf 'abc'", 0, output="abc"),
    Case("no_output_at_all", "true", 0, output=""),
    Case("stderr_is_captured", "echo err >&2", 0, output="err\n"),
    Case("command_text_is_not_echoed", "echo visible # secret-comment", 0, output="visible\n"),
    Case(
        "function_defined_and_used_later",
        'greet() { echo "hi $1"; }',
        0,
        then=("greet bob", "hi bob\n"),
    ),
    Case("very_long_command_100k", "x=" + "a" * 100_000 + "; echo ${#x}", 0, output="100000\n"),
    Case("command_with_carriage_return_in_string", "printf 'a\\rb\\n'", 0, output="b\n"),
    # -- persistence ----------------------------------------------------------
    Case("cd_persists", "mkdir -p sub/dir && cd sub/dir", 0, then=("basename $(pwd)", "dir\n")),
    Case(
        "export_persists",
        "export TMAX_TEST_VAR=persisted",
        0,
        then=("echo $TMAX_TEST_VAR", "persisted\n"),
    ),
    Case(
        "noninteractive_env_defaults",
        'echo "$PAGER $GIT_PAGER $GIT_EDITOR $GIT_TERMINAL_PROMPT $DEBIAN_FRONTEND $TERM"',
        0,
        output="cat cat : 0 noninteractive xterm-256color\n",
    ),
    # -- big, binary and endless output ----------------------------------------
    Case(
        "output_10mb_is_capped",
        "head -c 10000000 /dev/zero | tr '\\0' x",
        0,
        check=lambda r: (
            r.dropped_chars > 9_000_000
            and r.output.startswith(_x(5000))
            and r.output.endswith(_x(5000))
            and len(r.output) < 200_000
        ),
    ),
    Case(
        "output_10mb_of_lines",
        "seq 1 1500000",
        0,
        check=lambda r: (
            r.output.startswith("1\n2\n3\n")
            and r.output.endswith("1500000\n")
            and r.dropped_chars > 0
        ),
    ),
    Case(
        "output_binary_random_bytes",
        "head -c 300000 /dev/urandom",
        0,
        check=lambda r: "\x1b" not in r.output and "\r" not in r.output,
        then=("echo ok", "ok\n"),
    ),
    Case(
        "output_long_line_without_newline",
        "head -c 300000 /dev/zero | tr '\\0' a",
        0,
        check=lambda r: r.output.startswith("a" * 5000) and r.output.endswith("a" * 5000),
    ),
    Case(
        "output_endless_yes_stopped_by_timeout",
        "yes",
        124,
        timeout=STOP,
        timed_out=True,
        check=lambda r: r.output.startswith("y\ny\n"),
    ),
    Case("output_endless_through_pipeline", "yes | cat | cat", 124, timeout=STOP, timed_out=True),
    # -- timeouts --------------------------------------------------------------
    Case("sleep_past_timeout", "sleep 30", 124, timeout=STOP, timed_out=True),
    Case(
        "sleep_then_echo_stops_whole_list",
        "sleep 30; echo never",
        124,
        timeout=STOP,
        timed_out=True,
        absent=("never",),
        then=("echo after", "after\n"),
    ),
    Case(
        "busy_loop_in_the_shell_itself",
        "while :; do :; done",
        124,
        timeout=STOP,
        timed_out=True,
        then=("echo alive", "alive\n"),
    ),
    Case(
        "trap_ignoring_int_and_term_needs_kill",
        "trap '' INT TERM; sleep 30",
        124,
        timeout=STOP,
        timed_out=True,
        then=("trap - INT TERM; echo ok", "ok\n"),
    ),
    Case(
        "child_ignoring_int_and_term",
        "sh -c 'trap \"\" INT TERM; sleep 30'",
        124,
        timeout=STOP,
        timed_out=True,
    ),
    Case(
        "shell_trap_swallowing_sigint_forces_restart",
        "trap 'echo INT' INT; while :; do :; done",
        124,
        timeout=STOP,
        timed_out=True,
        restarted=True,
        then=("echo fresh", "fresh\n"),
    ),
    Case("command_substitution_that_hangs", "x=$(sleep 30)", 124, timeout=STOP, timed_out=True),
    # -- programs waiting for input --------------------------------------------
    Case(
        "read_waits_for_input_until_timeout",
        "read line",
        124,
        timeout=3,
        timed_out=True,
        waiting=True,
        events=(InputWaitSuspected,),
    ),
    Case(
        "read_answered_via_send_input",
        "read -p 'Name: ' name; echo \"hi $name\"",
        0,
        answer=b"bob\n",
        waiting=True,
        contains=("Name: ", "hi bob"),
    ),
    Case(
        "password_prompt_read_s_not_echoed",
        "read -s -p 'Password: ' pw; echo; echo \"len=${#pw}\"",
        0,
        answer=b"hunter2\n",
        waiting=True,
        contains=("Password:", "len=7"),
        absent=("hunter2",),
    ),
    Case(
        "sudo_k_sudo_true_prompt",
        "sudo -k; sudo true",
        124,
        timeout=3,
        timed_out=True,
        waiting=True,
        needs="sudo",
        skip_if="sudo -n true",  # root or passwordless sudo: there is no prompt to see
    ),
    Case(
        "getpass_prompt_on_dev_tty",
        "python3 -c 'import getpass; print(len(getpass.getpass(\"Secret: \")))'",
        0,
        answer=b"abcde\n",
        waiting=True,
        contains=("Secret:", "5"),
        absent=("abcde",),
        needs="python3",
    ),
    Case(
        "cat_reads_terminal_until_eof",
        "cat",
        0,
        answer=b"typed\n\x04",
        waiting=True,
        contains=("typed",),
    ),
    Case(
        "python_input_stopped_by_timeout",
        "python3 -c 'input()'",
        124,
        timeout=3,
        timed_out=True,
        waiting=True,
        needs="python3",
    ),
    # -- full-screen programs ----------------------------------------------------
    Case(
        "alt_screen_printf_enter_and_leave",
        "printf '\\e[?1049hfull\\e[?1049l'; echo done",
        0,
        alt_screen=True,
        contains=("done",),
        events=(AltScreenChanged,),
    ),
    Case(
        "alt_screen_left_on_is_reset_at_end",
        "printf '\\e[?47h'",
        0,
        alt_screen=True,
        events=(AltScreenChanged,),
    ),
    Case(
        "less_quit_with_q",
        "less hd_less.txt",
        0,
        setup="seq 1 500 > hd_less.txt",
        answer=b"q",
        alt_screen=True,
        waiting=True,
        needs="less",
    ),
    Case(
        "vim_quit_with_colon_q",
        "vim -u NONE -N hd_vim.txt",
        0,
        answer=b"\x1b:q!\r",
        alt_screen=True,
        waiting=True,
        needs="vim",
    ),
    Case(
        "nested_interactive_bash_needs_sigkill",
        "bash --norc -i",
        124,
        timeout=3,
        timed_out=True,
        waiting=True,
        then=("echo outer", "outer\n"),
    ),
    Case(
        "git_log_does_not_open_a_pager",
        "git init -q repo && cd repo && git -c user.name=t -c user.email=t@e commit -q "
        "--allow-empty -m first && git log --format=%s && git diff HEAD",
        0,
        output="first\n",
        needs="git",
    ),
    Case("top_stopped_by_timeout", "top", 124, timeout=STOP, timed_out=True, needs="top"),
    Case(
        "terminal_left_in_raw_mode_is_repaired", "stty raw -echo", 0, then=("echo fine", "fine\n")
    ),
    # -- background jobs and many processes --------------------------------------
    Case(
        "background_job_returns_at_once",
        "sleep 30 & echo started",
        0,
        output="started\n",
        background=True,
    ),
    Case(
        "nohup_job_returns_at_once",
        "nohup sleep 30 >/dev/null 2>&1 & echo ok",
        0,
        output="ok\n",
        background=True,
    ),
    Case(
        "job_end_notices_dropped_but_jobs_listing_kept",
        "sleep 0.1 & sleep 0.5; false & wait $!; sleep 30 & jobs",
        0,
        check=lambda r: (
            r.output.endswith("Running                 sleep 30 &\n")
            and "Done" not in r.output
            and "Exit 1" not in r.output
        ),
        background=True,
    ),
    Case(
        "fork_200_children_and_wait",
        "for i in $(seq 200); do sleep 0.2 & done; wait; echo all",
        0,
        output="all\n",
    ),
    Case(
        "fork_orphans_outside_job_control",
        "for i in $(seq 50); do (sleep 30 &); done; echo ok",
        0,
        output="ok\n",
        background=True,
    ),
    Case(
        "wait_on_jobs_stopped_by_timeout",
        "for i in $(seq 20); do sleep 30 & done; wait",
        124,
        timeout=STOP,
        timed_out=True,
        background=True,
    ),
    # -- shell death ---------------------------------------------------------------
    Case(
        "exit_restarts_shell",
        "exit 3",
        3,
        restarted=True,
        events=(ShellRestarted,),
        then=("echo back", "back\n"),
    ),
    Case(
        "exit_keeps_directory",
        "mkdir -p keep && cd keep && exit",
        0,
        restarted=True,
        then=("basename $(pwd)", "keep\n"),
    ),
    Case("exec_bash_restarts_shell", "exec bash", 0, restarted=True, then=("echo ok", "ok\n")),
    Case(
        "exec_other_program_then_timeout",
        "exec sleep 30",
        124,
        timeout=STOP,
        timed_out=True,
        restarted=True,
        then=("echo ok", "ok\n"),
    ),
    Case("kill_9_self", "kill -9 $$", 137, restarted=True, then=("echo ok", "ok\n")),
    Case(
        "set_e_then_failure_kills_shell",
        "set -e; false; echo never",
        1,
        restarted=True,
        absent=("never",),
        then=("echo ok", "ok\n"),
    ),
    Case(
        "set_e_inside_subshell_only",
        '(set -e; false; echo never); echo "sub=$?"',
        0,
        output="sub=1\n",
    ),
    Case(
        "exit_with_background_job_holding_tty",
        "sleep 30 & exit 4",
        4,
        restarted=True,
        then=("echo ok", "ok\n"),
    ),
    # -- traps --------------------------------------------------------------------
    Case(
        "trap_exit_in_subshell",
        "( trap 'echo cleanup' EXIT; echo body )",
        0,
        output="body\ncleanup\n",
    ),
    Case("trap_err", "trap 'echo caught' ERR; false; trap - ERR", 0, contains=("caught",)),
    # -- text view -----------------------------------------------------------------
    Case(
        "unicode_and_wide_characters",
        "printf '日本語 😀 café ｗｉｄｅ\\n'",
        0,
        output="日本語 😀 café ｗｉｄｅ\n",
    ),
    Case("invalid_utf8_replaced", "printf 'a\\377b\\n'", 0, output="a\ufffdb\n"),
    Case(
        "progress_bar_collapses",
        "for i in 10 50 100; do printf '\\r%3d%%' $i; done; echo",
        0,
        output="100%\n",
    ),
    Case("progress_bar_with_erase_line", "printf 'working...\\r\\e[Kdone\\n'", 0, output="done\n"),
    Case(
        "ansi_colours_stripped",
        "printf '\\e[1;31mred\\e[0m \\e]0;title\\a\\e[32mgreen\\e[m\\n'",
        0,
        output="red green\n",
    ),
    # -- fake markers --------------------------------------------------------------
    Case(
        "fake_marker_does_not_end_command",
        "printf '\\e]6973;0123456789abcdef;0;\\a'; sleep 0.2; echo after; (exit 5)",
        5,
        contains=("after",),
    ),
    Case(
        "fake_marker_split_across_writes",
        "printf '\\e]69'; sleep 0.1; printf '73;0123456789abcdef;'; sleep 0.1; printf '0;\\a';"
        " echo tail; (exit 6)",
        6,
        contains=("tail",),
    ),
    Case(
        "fake_marker_plain_text",
        "echo ']6973;deadbeefdeadbeef;0;'; (exit 7)",
        7,
        contains=("]6973;deadbeefdeadbeef;0;",),
    ),
    # -- the model tampering with the shell ------------------------------------------
    Case(
        "aliases_cannot_hijack_the_command_line",
        "alias __tmax_pre='echo pwned' builtin='echo pwned' .='echo pwned'",
        0,
        then=("echo ok", "ok\n"),
    ),
    Case(
        "functions_shadowing_printf_and_stty",
        "printf() { echo fake; }; stty() { echo fake; }",
        0,
        then=("echo ok", "ok\n"),
    ),
    Case(
        "prompt_command_is_readonly",
        "PROMPT_COMMAND='echo noise'",
        1,
        contains=("readonly",),
        then=("echo ok", "ok\n"),
    ),
    Case("set_o_vi_turns_on_readline", "set -o vi", 0, then=("echo ok", "ok\n")),
    Case("set_x_tracing_persists", "set -x", 0, then=("echo t", "++ echo t\nt\n")),
    Case("history_is_not_kept", "echo one", 0, then=("history | wc -l", "0\n")),
    # -- file descriptors ----------------------------------------------------------
    Case(
        "command_closes_stdout",
        "exec 1>&-; echo gone",
        1,
        contains=("Bad file descriptor",),
        then=("echo back", "back\n"),
    ),
    Case("command_closes_all_std_fds", "exec 0<&- 1>&- 2>&-", 0, then=("echo back", "back\n")),
    Case(
        "command_redirects_stdout_to_devnull",
        "exec >/dev/null; echo hidden",
        0,
        output="",
        then=("echo visible", "visible\n"),
    ),
]


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    live = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.append(child)
        except psutil.Error:
            continue
    return live


def _eventually(predicate: Callable[[], bool], within: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds (bounded, for reaping to happen)."""
    end = time.monotonic() + within
    while True:
        if predicate():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.02)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_adversarial_command(case: Case, tmp_path) -> None:
    if case.needs and shutil.which(case.needs) is None:
        pytest.skip(f"{case.needs} is not installed here")
    if (
        case.skip_if
        and subprocess.run(
            ["bash", "-c", case.skip_if], check=False, capture_output=True
        ).returncode
        == 0
    ):
        pytest.skip(f"`{case.skip_if}` succeeds here")
    shell = PtyShell(tmp_path, kill_grace=GRACE, input_wait_after=0.4)
    events: list[object] = []
    sessions: set[int] = set()
    answered = threading.Event()

    def on_event(event: object) -> None:
        if not isinstance(event, Output):
            events.append(event)
        if isinstance(event, InputWaitSuspected) and case.answer and not answered.is_set():
            answered.set()
            # Answer from another thread, as a UI would.
            threading.Thread(target=shell.send_input, args=(case.answer,)).start()

    def track() -> None:
        assert shell.pid is not None
        sessions.add(shell.pid)

    try:
        shell.start()
        track()
        shell.subscribe(on_event)
        if case.setup:
            assert shell.run(case.setup).exit_code == 0
        result = shell.run(case.command, timeout=case.timeout)
        track()

        assert result.exit_code == case.exit_code, result
        assert result.timed_out is case.timed_out, result
        assert result.restarted is case.restarted, result
        # "Returns within its timeout" (with room for the kill escalation and a restart).
        assert result.duration_s < case.timeout + 3 * GRACE + 10, result
        if case.waiting is not None:
            assert result.waiting_for_input is case.waiting, result
        if case.alt_screen is not None:
            assert result.alt_screen_used is case.alt_screen, result
        if case.output is not None:
            assert result.output == case.output
        for text in case.contains:
            assert text in result.output, result.output[-2000:]
        for text in case.absent:
            assert text not in result.output, result.output[-2000:]
        if case.check is not None:
            assert case.check(result), result.output[:300]
        for kind in case.events:
            assert any(isinstance(e, kind) for e in events), events
        if case.answer:
            assert answered.is_set()
        if not case.background:
            # Nothing the command started is still running.
            assert _eventually(lambda: not _tree(shell.pid)), _tree(shell.pid)
        if case.then:
            follow = shell.run(case.then[0], timeout=LONG)
            track()
            assert (follow.exit_code, follow.output) == (0, case.then[1]), follow
    finally:
        shell.close()
    # After close, no process from any of the shell's sessions remains.
    assert _eventually(lambda: not any(procs.session_members(sid) for sid in sessions)), [
        procs.session_members(sid) for sid in sessions
    ]
    assert not shell.alt_screen


def test_suite_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
