"""The shell's pieces and public API: text view, environment, cast recorder,
events, interaction from other threads (input, Ctrl-C, resize, close)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmax_local.errors import TmaxError
from tmax_local.shell import (
    AltScreenChanged,
    AsciicastRecorder,
    CommandFinished,
    CommandResult,
    CommandStarted,
    InputWaitSuspected,
    Output,
    PtyShell,
    ShellClosed,
    ShellRestarted,
    TextCollector,
    clean_text,
    shell_environment,
)

# A failure in a shell thread (reader, worker) fails the test.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def wait_for(predicate, within: float = 20.0) -> bool:
    end = time.monotonic() + within
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def shell(tmp_path):
    sh = PtyShell(tmp_path, timeout=20, kill_grace=0.3, input_wait_after=0.4)
    with sh:
        yield sh


# -- text view --------------------------------------------------------------
SAMPLE = (
    b"\x1b[1;31mred\x1b[0m plain\r\n"
    b"\x1b]0;window title\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\r\n"
    b"\x1bP+q544e\x1b\\dcs-gone\r\n"
    b"10%\r50%\r100%\r\n"
    b"abc\x08\x08XY\r\n"
    b"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 bad:\xff\xfe!\r\n"
    b"tab\there\x1b(B\x1b[?25l\x1b[?1049h\x1b[K\r\n"
    b"no newline"
)
EXPECTED = (
    "red plain\nlink\ndcs-gone\n100%\naXY\ncafé 日本 😀 bad:\ufffd\ufffd!\ntab\there\nno newline"
)


def test_clean_text_strips_sequences_and_resolves_overwrites() -> None:
    assert clean_text(SAMPLE) == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_text_view_is_independent_of_chunk_boundaries(seed: int) -> None:
    rng = random.Random(seed)
    collector = TextCollector()
    pos = 0
    while pos < len(SAMPLE):
        step = rng.randint(1, 7)
        collector.feed(SAMPLE[pos : pos + step])
        pos += step
    collector.finish()
    assert collector.text() == EXPECTED


def test_cap_keeps_head_and_tail_and_counts_the_rest() -> None:
    collector = TextCollector(head_chars=6000, tail_chars=6000)
    lines = [f"line {i:07d}\n".encode() for i in range(200_000)]  # 2.6 MB
    for i in range(0, len(lines), 997):
        collector.feed(b"".join(lines[i : i + 997]))
    collector.finish()
    text = collector.text()
    total = sum(len(line) for line in lines)
    assert text.startswith("line 0000000\nline 0000001\n")
    assert text.endswith("line 0199999\n")
    head, note, tail = text.partition(
        f"\n[... {collector.total_dropped()} characters dropped ...]\n"
    )
    assert note, text[5990:6100]
    assert len(head) == 6000 and len(tail) == 6000
    assert len(head) + len(tail) + collector.total_dropped() == total


def test_cap_bounds_memory_for_a_single_endless_line() -> None:
    collector = TextCollector(head_chars=5000, tail_chars=5000)
    chunk = b"z" * 65536
    for _ in range(200):  # 13 MB, no newline
        collector.feed(chunk)
    assert collector._tail_len <= 2 * 5000 + 16 * 1024  # what is stored stays bounded
    assert len(collector.text()) < 10_100
    assert collector.total_dropped() == 200 * 65536 - 10_000


def test_unterminated_escape_garbage_does_not_swallow_output() -> None:
    collector = TextCollector()
    collector.feed(b"\x1b]never terminated " + b"q" * 10_000)
    collector.feed(b"\nvisible\n")
    collector.finish()
    assert "visible" in collector.text()


# -- environment -------------------------------------------------------------
def test_environment_withholds_secrets_and_sets_noninteractive_defaults() -> None:
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/u",
        "OPENAI_API_KEY": "sk-1",
        "GITHUB_TOKEN": "t",
        "AWS_SECRET_ACCESS_KEY": "s",
        "PGPASSWORD": "p",
        "MY_PASSWD": "p",
        "GOOGLE_APPLICATION_CREDENTIALS": "/c.json",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "PAGER": "less",
        "BASH_ENV": "/etc/evil",
        "PROMPT_COMMAND": "evil",
        "BASH_FUNC_x%%": "() { :; }",
    }
    env, withheld = shell_environment(base)
    assert withheld == sorted(
        [
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "PGPASSWORD",
            "MY_PASSWD",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "SSH_AUTH_SOCK",
        ]
    )
    for name in withheld + ["BASH_ENV", "PROMPT_COMMAND", "BASH_FUNC_x%%"]:
        assert name not in env
    assert env["HOME"] == "/home/u" and env["PATH"] == "/usr/bin:/bin"
    assert env["PAGER"] == "cat" and env["GIT_PAGER"] == "cat" and env["GIT_EDITOR"] == ":"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["DEBIAN_FRONTEND"] == "noninteractive"
    assert env["TERM"] == "xterm-256color"
    env, withheld = shell_environment(base, allow_secrets=True)
    assert withheld == [] and env["GITHUB_TOKEN"] == "t"


def test_secrets_do_not_reach_the_shell(tmp_path) -> None:
    base = {"PATH": os.environ["PATH"], "TMAX_FAKE_TOKEN": "leak", "TMAX_PLAIN": "fine"}
    with PtyShell(tmp_path, env=base) as sh:
        assert sh.withheld_env == ["TMAX_FAKE_TOKEN"]
        result = sh.run('echo "[$TMAX_FAKE_TOKEN] [$TMAX_PLAIN]"')
        assert result.output == "[] [fine]\n"
    with PtyShell(tmp_path, env=base, allow_secrets=True) as sh:
        assert sh.run("echo $TMAX_FAKE_TOKEN").output == "leak\n"


def test_user_rc_files_are_not_read(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("echo FROM_BASHRC; alias ls=false\n")
    (home / ".bash_profile").write_text("echo FROM_PROFILE\n")
    seen: list[bytes] = []
    sh = PtyShell(tmp_path, env={"PATH": os.environ["PATH"], "HOME": str(home)})
    sh.subscribe(lambda e: seen.append(e.data) if isinstance(e, Output) else None)
    with sh:
        result = sh.run("ls >/dev/null; echo $?")
    assert result.output == "0\n"
    assert b"FROM_" not in b"".join(seen)


# -- events and the raw stream -------------------------------------------------
def test_events_in_order_and_raw_stream_has_no_markers(shell) -> None:
    events: list[object] = []
    unsubscribe = shell.subscribe(events.append)
    result = shell.run("printf 'a\\e[31mb\\e[0m\\n'")
    assert result.output == "ab\n"
    assert isinstance(events[0], CommandStarted) and events[0].command.startswith("printf")
    assert isinstance(events[-1], CommandFinished) and events[-1].result == result
    raw = b"".join(e.data for e in events if isinstance(e, Output))
    assert raw == b"a\x1b[31mb\x1b[0m\r\n"  # colours kept, no marker, no echoed command
    unsubscribe()
    shell.run("echo more")
    assert not any(isinstance(e, CommandStarted) and e.command == "echo more" for e in events)


def test_failing_subscriber_is_logged_and_does_not_break_the_shell(shell, caplog) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("subscriber bug")

    seen: list[object] = []
    shell.subscribe(broken)
    shell.subscribe(seen.append)
    result = shell.run("echo still works")
    assert result.output == "still works\n"
    assert any(isinstance(e, CommandFinished) for e in seen)  # later subscribers still called
    assert "subscriber bug" in caplog.text


def test_output_between_commands_reaches_subscribers_only(shell) -> None:
    raw: list[bytes] = []
    shell.subscribe(lambda e: raw.append(e.data) if isinstance(e, Output) else None)
    first = shell.run("(sleep 0.3; echo late-output) &")
    assert "late-output" not in first.output
    assert wait_for(lambda: b"late-output" in b"".join(raw))
    assert "late-output" not in shell.run("echo next").output


def test_alt_screen_events_and_reset_when_left_on(shell) -> None:
    seen: list[bool] = []
    shell.subscribe(lambda e: seen.append(e.active) if isinstance(e, AltScreenChanged) else None)
    result = shell.run("printf '\\e[?1049hscreen'")
    assert result.alt_screen_used
    assert seen == [True, False]
    assert not shell.alt_screen
    assert not shell.run("echo x").alt_screen_used


def test_asciicast_recording(shell, tmp_path) -> None:
    path = tmp_path / "session.cast"
    with AsciicastRecorder(path, cols=120, rows=40) as recorder:
        unsubscribe = shell.subscribe(recorder)
        shell.run("printf 'caf\\303\\251\\n'; printf '\\e[32mok\\e[0m\\n'")
        recorder.resize(100, 30)
        unsubscribe()
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and (header["width"], header["height"]) == (120, 40)
    events = [json.loads(line) for line in lines[1:]]
    text = "".join(e[2] for e in events if e[1] == "o")
    assert text == "café\r\n\x1b[32mok\x1b[0m\r\n"
    assert events[-1][1:] == ["r", "100x30"]
    times = [e[0] for e in events]
    assert times == sorted(times)


# -- interaction from other threads ----------------------------------------------
def test_run_from_worker_thread_and_interrupt(shell) -> None:
    started = threading.Event()
    shell.subscribe(lambda e: started.set() if isinstance(e, CommandStarted) else None)
    box: list[CommandResult] = []
    worker = threading.Thread(target=lambda: box.append(shell.run("sleep 30; echo never")))
    worker.start()
    assert started.wait(10)
    assert wait_for(lambda: any(p.name() == "sleep" for p in _children(shell.pid)))
    shell.interrupt()
    worker.join(20)
    assert not worker.is_alive()
    result = box[0]
    assert result.exit_code == 130 and not result.timed_out and "never" not in result.output


@pytest.mark.parametrize("command", ["sleep 30; echo never", "while :; do :; done; echo never"])
@pytest.mark.parametrize("caller", ["same thread", "other thread"])
def test_interrupt_right_at_command_started_is_not_lost(shell, command, caller) -> None:
    """Regression: Ctrl-C sent the moment CommandStarted fires, before bash has even
    read the command line, used to reach only bash (which dropped it), and the
    command ran on.  The shell now keeps it and delivers it once the command runs."""
    threads: list[threading.Thread] = []

    def on_event(event) -> None:
        if isinstance(event, CommandStarted):
            if caller == "same thread":
                shell.interrupt()
            else:
                thread = threading.Thread(target=shell.interrupt)
                threads.append(thread)
                thread.start()

    unsubscribe = shell.subscribe(on_event)
    try:
        for _ in range(3):  # the race is timing-dependent: try it more than once
            result = shell.run(command, timeout=60)
            assert not result.timed_out and not result.restarted
            assert result.exit_code == 130, result
            assert "never" not in result.output
            assert result.duration_s < 25  # ended by the interrupt, not the 30 s sleep
    finally:
        unsubscribe()
        for thread in threads:
            thread.join(10)
    # The request belonged to those commands only: the next one is not interrupted.
    after = shell.run("sleep 0.2; echo ok")
    assert after.exit_code == 0 and after.output == "ok\n"


def test_input_wait_event_then_answer(shell) -> None:
    waits: list[InputWaitSuspected] = []

    def on_event(event: object) -> None:
        if isinstance(event, InputWaitSuspected):
            waits.append(event)
            shell.send_input(b"yes\n")

    shell.subscribe(on_event)
    result = shell.run("read -p 'Continue? ' answer; echo \"got $answer\"")
    assert result.exit_code == 0 and result.waiting_for_input
    assert [w.command for w in waits] == [result.command]
    assert "got yes" in result.output


def test_sleep_is_not_mistaken_for_input_wait(shell) -> None:
    result = shell.run("sleep 1.2; echo done")
    assert result.output == "done\n" and not result.waiting_for_input


def test_resize_reaches_programs(shell) -> None:
    assert shell.run("stty size").output == "40 120\n"
    shell.resize(30, 100)
    assert shell.run("stty size").output == "30 100\n"
    assert shell.run("tput cols").output.strip() == "100"


def test_restart_event_and_same_directory(shell, tmp_path) -> None:
    reasons: list[str] = []
    shell.subscribe(lambda e: reasons.append(e.reason) if isinstance(e, ShellRestarted) else None)
    (tmp_path / "deep").mkdir()
    old_pid = shell.pid
    assert shell.run("cd deep").exit_code == 0
    result = shell.run("kill -9 $$")
    assert result.restarted and result.exit_code == 137
    assert shell.pid != old_pid and len(reasons) == 1
    assert shell.run("pwd").output == f"{tmp_path / 'deep'}\n"
    assert shell.cwd == str(tmp_path / "deep")


def test_close_while_running_raises_shell_closed(tmp_path) -> None:
    sh = PtyShell(tmp_path).start()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            sh.run("sleep 30")
        except ShellClosed as err:
            errors.append(err)

    worker = threading.Thread(target=work)
    worker.start()
    assert wait_for(lambda: any(p.name() == "sleep" for p in _children(sh.pid)))
    sh.close()
    worker.join(20)
    assert not worker.is_alive() and len(errors) == 1
    with pytest.raises(ShellClosed):
        sh.run("echo again")


def test_missing_directory_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(TmaxError):
        PtyShell(tmp_path / "does-not-exist").start()


def test_default_timeout_applies(tmp_path) -> None:
    with PtyShell(tmp_path, timeout=1, kill_grace=0.2) as sh:
        result = sh.run("sleep 30")
    assert result.timed_out and result.exit_code == 124


def test_core_imports_without_textual() -> None:
    code = "import sys, tmax_local.shell; assert 'textual' not in sys.modules, 'textual imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _children(pid: int | None):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def test_half_typed_input_between_commands_is_discarded(shell) -> None:
    shell.send_input(b"garbage-without-enter")
    assert shell.run("echo ok").output == "ok\n"


def test_interrupt_when_idle_is_harmless(shell) -> None:
    shell.interrupt()
    shell.interrupt()
    assert shell.run("echo ok").output == "ok\n"


# -- fuzzing the text view ------------------------------------------------------

_TOKENS = st.sampled_from(
    [
        b"a",
        b"xyz ",
        b"\xc3\xa9",
        b"\xe6\x97\xa5",
        b"\xff",
        b"\r\n",
        b"\n",
        b"\r",
        b"\t",
        b"\x08",
        b"\x1b[31m",
        b"\x1b[0m",
        b"\x1b[K",
        b"\x1b[2K",
        b"\x1b]0;t\x07",
        b"\x1b]8;;u\x1b\\",
        b"\x1bP1$r\x1b\\",
        b"\x1b(B",
        b"\x1b[?1049h",
        b"\x07",
        b"\x00",
        b"\x1b",
    ]
)


def _feed_in_chunks(data: bytes, cuts: list[int]) -> str:
    collector = TextCollector()
    pos = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        collector.feed(data[pos:cut])
        pos = max(pos, cut)
    collector.feed(data[pos:])
    collector.finish()
    return collector.text()


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=60), st.lists(st.integers(0, 10_000), max_size=8))
def test_fuzz_terminal_tokens_chunking_never_changes_the_text(tokens, cuts) -> None:
    data = b"".join(tokens)
    assert _feed_in_chunks(data, cuts) == clean_text(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10_000), max_size=8))
def test_fuzz_arbitrary_bytes_leave_only_printable_text(data, cuts) -> None:
    text = _feed_in_chunks(data, cuts)
    assert text == clean_text(data)
    assert "\x1b" not in text and "\r" not in text
    assert not any(ch < " " and ch not in "\n\t" for ch in text)
    assert not any("\x7f" <= ch <= "\x9f" for ch in text)
