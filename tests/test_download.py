"""The download path for real: the real huggingface_hub client (in `tmax-local` child
processes, as a user runs it) against a Hub stand-in on 127.0.0.1 (`tmax_local.testing.hub`)
that serves a tiny checkpoint repo with a tag and a GGUF repo, and injects faults: dropped
connections, corrupted bytes, a slow link; plus a disk that fills up during the download."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tmax_local.testing.hub import FakeHub, Fault

REPO = "tmax-test/tiny-tmax"
GGUF_REPO = "tmax-test/tiny-tmax-GGUF"
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"
KW = {"naming": "causal", "linear_k_heads": 2, "linear_v_heads": 4, "shards": 2}


@pytest.fixture(scope="module")
def hub(tiny_checkpoint) -> Iterator[FakeHub]:
    h = FakeHub()
    # step-0200: an older commit with other shapes (K=V=4 heads; the same checkpoint as
    # test_convert_cli's revision test, so a full run builds it once)
    h.add_repo(REPO, tiny_checkpoint(naming="causal", linear_k_heads=4, linear_v_heads=4,
                                     dtype="float16", seed=3), branch="old", tags=["step-0200"])
    # main: the current commit, sharded (K=2, V=4 heads)
    h.add_repo(REPO, tiny_checkpoint(**KW, seed=5))
    with h:
        yield h


@pytest.fixture(scope="module")
def gguf_repo(hub, tiny_gguf, tmp_path_factory) -> str:
    q8 = tiny_gguf("Q8_0", **{k: v for k, v in KW.items() if k != "shards"})
    readme = tmp_path_factory.mktemp("ggufrepo") / "README.md"
    readme.write_text("tiny GGUF repo\n")
    # two "quants" of the same tiny model (the bytes do not matter to the choice)
    alt = readme.parent / "tiny-tmax-F16.gguf"
    shutil.copyfile(q8, alt)
    with alt.open("r+b") as f:  # a different file: same header, other trailing bytes
        f.seek(0, 2)
        f.write(b"\0" * 64)
    hub.add_repo(
        GGUF_REPO, {"README.md": readme, "tiny-tmax-Q8_0.gguf": q8, "tiny-tmax-F16.gguf": alt}
    )
    return GGUF_REPO


@pytest.fixture
def env(hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    hub.faults.clear()
    hub.requests.clear()
    return {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "TMAX_MODELS_DIR": str(tmp_path / "models"),
        "TMAX_DATA_DIR": str(tmp_path / "data"),
        "TMAX_CONFIG_DIR": str(tmp_path / "config"),
    }


def _run(
    *args: str, env: dict[str, str], prefix: list[str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update(env)
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "tmax_local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        check=False,
    )


def _gguf_field(path: Path, key: str):
    import gguf

    return gguf.GGUFReader(str(path)).get_field(key).contents()


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tmax-local:")]
    assert lines, proc.stderr
    return lines[-1]


def _cache_files(env: dict[str, str], repo: str = REPO) -> list[Path]:
    blobs = Path(env["HF_HUB_CACHE"]) / ("models--" + repo.replace("/", "--")) / "blobs"
    return sorted(blobs.iterdir()) if blobs.is_dir() else []


def test_convert_repo_downloads_verifies_converts_and_reuses_the_cache(hub, env):
    proc = _run("convert", REPO, "--quant", "Q8_0", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    out = Path(env["TMAX_MODELS_DIR"]) / "tiny-tmax-Q8_0.gguf"
    assert proc.stdout.strip() == f"wrote {out}"
    assert _gguf_field(out, "qwen35.ssm.group_count") == 2  # main: K=2, V=4
    for name in (SHARD1, SHARD2, "tokenizer.json", "config.json"):
        assert len(hub.body_requests(name)) == 1, name
    commit = hub.commit_of(REPO, "main")
    snap = Path(env["HF_HUB_CACHE"]) / "models--tmax-test--tiny-tmax" / "snapshots" / commit
    assert (snap / SHARD1).read_bytes() == hub.file(REPO, SHARD1).source.read_bytes()

    # Again: nothing is downloaded a second time (--list-quants reads the checkpoint).
    hub.requests.clear()
    proc = _run("convert", REPO, "--list-quants", "--no-progress", env=env)
    assert proc.returncode == 0 and "Q4_K_M" in proc.stdout, proc.stderr
    assert not any(r.method == "GET" and r.name for r in hub.requests)

    # Offline (the Hub is down): the cache is used.
    hub.stop()
    try:
        proc = _run("convert", REPO, "--list-quants", "--no-progress", env=env)
        assert proc.returncode == 0 and "Q4_K_M" in proc.stdout, proc.stderr
    finally:
        hub.start(hub.port)


def test_revision_tag_downloads_that_commit_and_names_the_output_after_it(hub, env):
    proc = _run(
        "convert", REPO, "--revision", "step-0200", "--quant", "F16", "--no-progress", env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = Path(env["TMAX_MODELS_DIR"]) / "tiny-tmax-step-0200-F16.gguf"
    assert proc.stdout.strip() == f"wrote {out}"
    assert _gguf_field(out, "qwen35.ssm.group_count") == 4  # step-0200: K=V=4
    ref = Path(env["HF_HUB_CACHE"]) / "models--tmax-test--tiny-tmax" / "refs" / "step-0200"
    assert ref.read_text() == hub.commit_of(REPO, "step-0200")
    # Offline, the tag still resolves from the cache's refs.
    hub.stop()
    try:
        proc = _run(
            "convert", REPO, "--revision", "step-0200", "--list-quants", "--no-progress", env=env
        )
        assert proc.returncode == 0 and "Q4_K_M" in proc.stdout, proc.stderr
    finally:
        hub.start(hub.port)
    bad = _run("convert", REPO, "--revision", "step-9999", "--no-progress", env=env)
    assert "revision 'step-9999' not found on the Hub" in _one_line_error(bad)


def test_a_connection_dropped_mid_file_is_resumed_with_range_requests(hub, env):
    size = hub.file(REPO, SHARD1).size
    assert size > 60 << 20  # the client keeps what it got in 10 MiB pieces
    # Every response for the shard is cut after a fifth of what was asked: the client
    # resumes from where it stopped (HTTP Range) until the file is complete.
    hub.faults[SHARD1] = Fault(drop_after=size // 5, times=None)
    proc = _run("convert", REPO, "--list-quants", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    gets = hub.body_requests(SHARD1)
    assert len(gets) >= 3
    assert gets[0].range is None and all(g.range and g.status == 206 for g in gets[1:])
    starts = [int(g.range.split("=")[1].rstrip("-")) for g in gets[1:]]  # type: ignore[union-attr]
    assert starts == sorted(starts) and starts[0] > 0  # each retry resumes further on


def test_a_dropped_link_is_a_clear_error_and_the_next_run_resumes(hub, env):
    size = hub.file(REPO, SHARD1).size
    # The link to the big shard goes down after half of it and stays down for this run.
    hub.faults[SHARD1] = Fault(drop_after=size // 2, times=1, then_down=True)
    proc = _run("convert", REPO, "--quant", "F16", "--no-progress", env=env)
    line = _one_line_error(proc)
    assert "interrupted" in line and "run the same command again to resume" in line, line
    assert re.search(r"\d+ of \d+ files complete", line), line
    assert not list(Path(env["TMAX_MODELS_DIR"]).glob("*.gguf"))
    # Nothing half-written looks complete: every blob in the cache has its full size.
    expected = {hub.file(REPO, n).sha256: hub.file(REPO, n).size for n in (SHARD1, SHARD2)}
    for blob in _cache_files(env):
        assert not blob.name.endswith(".incomplete"), blob
        if blob.name in expected:
            assert blob.stat().st_size == expected[blob.name]
    assert hub.file(REPO, SHARD1).sha256 not in {b.name for b in _cache_files(env)}
    assert hub.file(REPO, SHARD2).sha256 in {b.name for b in _cache_files(env)}

    hub.faults.clear()
    hub.requests.clear()
    proc = _run("convert", REPO, "--list-quants", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(hub.body_requests(SHARD1)) == 1
    assert hub.body_requests(SHARD2) == []  # complete files are not fetched again
    assert hub.body_requests("tokenizer.json") == []


def test_corrupted_bytes_are_detected_and_fetched_again(hub, env):
    hub.faults[SHARD1] = Fault(corrupt=True, times=1)  # right size, wrong content, once
    proc = _run("convert", REPO, "--list-quants", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "damaged download, fetching again: " + SHARD1 in proc.stderr
    assert len(hub.body_requests(SHARD1)) == 2

    hub.requests.clear()
    hub.faults[SHARD1] = Fault(corrupt=True, times=None)  # always wrong: give up, clearly
    env2 = dict(env, HF_HUB_CACHE=env["HF_HUB_CACHE"] + "-2")
    line = _one_line_error(_run("convert", REPO, "--list-quants", "--no-progress", env=env2))
    assert "downloaded twice and does not match the Hub" in line, line
    assert hub.file(REPO, SHARD1).sha256 not in {b.name for b in _cache_files(env2)}


def test_a_damaged_file_in_the_cache_is_fetched_again(hub, env):
    assert _run("convert", REPO, "--list-quants", "--no-progress", env=env).returncode == 0
    blobs = {b.name: b for b in _cache_files(env)}
    shard1 = blobs[hub.file(REPO, SHARD1).sha256]
    with shard1.open("r+b") as f:  # bit rot: same size, one byte changed
        f.seek(1000)
        f.write(b"\xff" if f.read(1) != b"\xff" else b"\x00")
    shard2 = blobs[hub.file(REPO, SHARD2).sha256]
    with shard2.open("r+b") as f:  # truncated
        f.truncate(shard2.stat().st_size // 2)
    hub.requests.clear()
    proc = _run("convert", REPO, "--list-quants", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(hub.body_requests(SHARD1)) == 1 and len(hub.body_requests(SHARD2)) == 1
    assert hub.body_requests("tokenizer.json") == []
    assert shard1.read_bytes() == hub.file(REPO, SHARD1).source.read_bytes()


def test_a_damaged_cache_offline_is_reported_not_used(hub, env):
    assert _run("convert", REPO, "--list-quants", "--no-progress", env=env).returncode == 0
    blob = next(b for b in _cache_files(env) if b.name == hub.file(REPO, SHARD1).sha256)
    with blob.open("r+b") as f:
        f.truncate(10)
    line = _one_line_error(
        _run("convert", REPO, "--list-quants", "--no-progress", env=dict(env, HF_HUB_OFFLINE="1"))
    )
    assert "is damaged" in line and SHARD1 in line, line


def _unshare_prefix(
    size_bytes: int, mount: Path, fill_after_s: float | None = None, leave_bytes: int = 0
) -> list[str]:
    """Run the command in a private mount namespace with a tmpfs of ``size_bytes`` at
    ``mount``; optionally fill it (leaving ``leave_bytes``) ``fill_after_s`` seconds in."""
    fill = ""
    if fill_after_s is not None:
        fill = (
            f"(sleep {fill_after_s}; free=$(df -B1 --output=avail {mount} | tail -1); "
            f"head -c $((free - {leave_bytes})) /dev/zero > {mount}/filler) & "
        )
    script = f'mount -t tmpfs -o size={size_bytes} tmpfs {mount} && {fill}exec "$@"'
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"]


def _can_unshare(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    d = tmp_path / "probe"
    d.mkdir()
    probe = subprocess.run(
        [*_unshare_prefix(1 << 20, d), "true"], capture_output=True, timeout=20, check=False
    )
    return probe.returncode == 0


def test_disk_full_during_download_is_a_clear_error_and_leaves_nothing_half_written(
    hub, env, tmp_path
):
    """An honest full disk: the HF cache on a private tmpfs (user + mount namespace, no root
    needed) that a filler process fills up while the throttled download runs. The cache is
    listed from inside the namespace after the failed run: no `.incomplete` file and no
    blob shorter than its size is left behind."""
    if not _can_unshare(tmp_path):
        pytest.skip("unshare --user --mount is not permitted here")
    cache = tmp_path / "small-disk"
    cache.mkdir()
    env = dict(env, HF_HUB_CACHE=str(cache))
    hub.faults[SHARD2] = Fault(rate=20e6, times=None)
    hub.faults[SHARD1] = Fault(rate=20e6, times=None)
    lister = (
        f"{sys.executable} -m tmax_local convert {REPO} --list-quants --no-progress; "
        f"echo rc=$?; find {cache} -type f -printf '%s %p\\n'"
    )
    proc = subprocess.run(
        [
            *_unshare_prefix(1 << 30, cache, fill_after_s=1.0, leave_bytes=1 << 20),
            "sh",
            "-c",
            lister,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("HF_")}, **env},
    )
    assert "rc=1" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("tmax-local:")][-1]
    assert "disk full while downloading" in line and "run the same command again" in line, line
    sizes = {hub.file(REPO, n).sha256: hub.file(REPO, n).size for n in (SHARD1, SHARD2)}
    for line in proc.stdout.splitlines():
        if not line[:1].isdigit():
            continue
        size, path = line.split(" ", 1)
        assert not path.endswith(".incomplete"), path
        name = Path(path).name
        if name in sizes:
            assert int(size) == sizes[name], path


def test_not_enough_space_is_refused_before_downloading(hub, env, tmp_path):
    if not _can_unshare(tmp_path):
        pytest.skip("unshare --user --mount is not permitted here")
    cache = tmp_path / "tiny-disk"
    cache.mkdir()
    env = dict(env, HF_HUB_CACHE=str(cache))
    proc = _run(
        "convert",
        REPO,
        "--list-quants",
        "--no-progress",
        env=env,
        prefix=_unshare_prefix(8 << 20, cache),
    )
    line = _one_line_error(proc)
    assert "not enough disk space to download" in line and "free" in line, line
    assert hub.body_requests(SHARD1) == []


def test_gguf_repo_file_is_picked_by_quant_downloaded_and_run(hub, gguf_repo, env, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    args = [
        "run",
        "say hi",
        "--model",
        GGUF_REPO,
        "--quant",
        "Q8_0",
        "--approve",
        "never-run",
        "--max-steps",
        "1",
        "--max-new-tokens",
        "4",
        "--ctx",
        "512",
        "--cwd",
        str(work),
    ]
    proc = _run(*args, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "finished: max_steps" in proc.stdout or "finished:" in proc.stdout, proc.stdout
    assert len(hub.body_requests("tiny-tmax-Q8_0.gguf")) == 1
    assert hub.body_requests("tiny-tmax-F16.gguf") == []
    # again, and offline: the cached, verified file is used
    hub.requests.clear()
    proc = _run(*args, env=dict(env, HF_HUB_OFFLINE="1"))
    assert "Traceback" not in proc.stderr and "finished:" in proc.stdout, proc.stderr
    assert hub.requests == []
    bad = _run(*args[:4], "--quant", "Q6_K", *args[6:], env=env)
    line = _one_line_error(bad)
    assert "has no GGUF file for Q6_K" in line and "tiny-tmax-Q8_0.gguf" in line, line


def test_gguf_repo_dropped_link_then_resume(hub, gguf_repo, env, tmp_path):
    name = "tiny-tmax-F16.gguf"
    size = hub.file(GGUF_REPO, name).size
    hub.faults[name] = Fault(drop_after=size // 2, times=1, then_down=True)
    args = [
        "run",
        "x",
        "--model",
        GGUF_REPO,
        "--quant",
        "F16",
        "--approve",
        "never-run",
        "--max-steps",
        "1",
        "--max-new-tokens",
        "2",
        "--ctx",
        "512",
        "--cwd",
        str(tmp_path),
    ]
    line = _one_line_error(_run(*args, env=env))
    assert "interrupted" in line and "0 of 1 files complete" in line, line
    hub.faults.clear()
    proc = _run(*args, env=env)
    assert "Traceback" not in proc.stderr and "finished:" in proc.stdout, proc.stderr


def test_terminal_progress_shows_bytes_rate_and_eta(hub, env):
    """`convert` in a real terminal (a PTY): the download bar shows bytes, rate and ETA."""
    import ptyprocess

    hub.faults[SHARD1] = Fault(rate=40e6, times=None)
    hub.faults[SHARD2] = Fault(rate=40e6, times=None)
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update(env, COLUMNS="120")
    proc = ptyprocess.PtyProcess.spawn(
        [sys.executable, "-m", "tmax_local", "convert", REPO, "--list-quants"],
        env=full,
        dimensions=(30, 120),
    )
    out = b""
    while True:
        try:
            out += proc.read(65536)
        except EOFError:
            break
    proc.wait()
    text = out.decode("utf-8", "replace")
    assert proc.exitstatus == 0, text[-2000:]
    bars = [s for s in re.split(r"[\r\n]", text) if s.startswith("Downloading " + REPO)]
    assert bars, text[-2000:]
    # e.g. "Downloading tmax-test/tiny-tmax:  45%|████▌     | 61.2M/136M [00:01<00:01, 39.8MB/s]"
    pattern = re.compile(
        r"\d+%\|.*\| [\d.]+[kMG]?/[\d.]+[kMG]? \[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]?B/s\]"
    )
    assert any(pattern.search(b) for b in bars), bars[-3:]


# Makes the random tiny model propose one fixed command, in TMax's tool-call format.
TOOL_CALL_GRAMMAR = r"""root ::= "ok" "\n<tool_call>\n<function=bash>\n<parameter=command>\necho from-hub > hub.txt\n</parameter>\n</function>\n</tool_call>"
"""


def test_app_f5_downloads_converts_and_runs_with_progress_in_the_status_bar(hub, env, tmp_path):
    """The app's F5 path in the real app (tmux): a repo not converted yet is offered, F5
    downloads it (the status bar shows bytes, rate and ETA), converts it, loads it (with a
    percentage) and runs it."""
    from tmax_local.testing.tmux import TmuxSession, tmax_argv

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    work = tmp_path / "work"
    work.mkdir()
    grammar = tmp_path / "call.gbnf"
    grammar.write_text(TOOL_CALL_GRAMMAR)
    hub.faults[SHARD1] = Fault(rate=10e6, times=None)  # slow enough to watch
    app_env = dict(
        env, TERM="xterm-256color", PYTHONPATH=os.pathsep.join(p for p in sys.path if p)
    )
    argv = [*tmax_argv(), "--model", REPO, "--quant", "Q8_0", "--grammar", str(grammar),
            "--cwd", str(work), "--ctx", "8192"]  # fmt: skip
    tmux = TmuxSession(argv, app_env, work, size=(140, 30))
    seen: list[str] = []
    try:
        tmux.wait_for(lambda s: "F5" in s, "the offer to download", timeout=120)
        tmux.keys("F5")

        def progress_shown(screen: str) -> bool:
            seen.append(screen)
            return bool(re.search(r"MB/s · ETA \d+:\d\d", screen))

        tmux.wait_for(progress_shown, "download progress in the status bar", timeout=180)
        tmux.wait_for(lambda s: "Q8_0" in s and "CPU" in s, "the loaded model", timeout=300)
        tmux.text("write hub.txt")
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "run this command?" in s, "the model's proposal", timeout=180)
        tmux.keys("a")
        tmux.wait_for(lambda s: "Step 2" in s, "the command to run", timeout=180)
        assert (work / "hub.txt").read_text() == "from-hub\n"
        tmux.keys("C-x")
        tmux.wait_for(lambda s: "finished (stopped)" in s, "the agent to stop", timeout=120)
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.close()
    assert (Path(env["TMAX_MODELS_DIR"]) / "tiny-tmax-Q8_0.gguf").is_file()
    assert len(hub.body_requests(SHARD1)) == 1
