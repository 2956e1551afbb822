"""Memory of the app over a long session: 64 steps whose commands print ~100 MB in total.

Runs the real `tmax-local` app in tmux (auto approval, a scripted model) twice in the same
run: once with commands that print 1.6 MB each (64 × 1.6 MB ≈ 100 MB through the terminal
pane, the shell's capture, the transcript and the recording) and once with commands that
print one line (the baseline). Samples the app's RSS (psutil) every 0.25 s and prints the
peak, the RSS after steps 16/32/48/64, the growth from step 16 to 64, and the transcript and
recording sizes on disk.

    python bench/bench_long_session.py            # both runs
    python bench/bench_long_session.py --steps 16 # shorter
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tmax_local.testing.tmux import TmuxSession, tmax_argv  # noqa: E402

BYTES_PER_STEP = 1_638_400  # × 64 = 100 MiB


def call(command: str) -> str:
    return (
        f"Step.\n<tool_call>\n<function=bash>\n<parameter=command>\n{command}\n"
        "</parameter>\n</function>\n</tool_call>"
    )


def session(steps: int, loud: bool, work: Path) -> dict[str, float]:
    noisy = f"yes 'tmax-local long session bench line: 0123456789abcdef' | head -c {BYTES_PER_STEP}"
    quiet = "echo quiet"
    replies = [call(noisy if loud else quiet) for _ in range(steps)]
    replies.append(call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"))
    script = work / f"script-{loud}.json"
    script.write_text(json.dumps(replies))
    data = work / f"data-{loud}"
    env = {
        "TMAX_DATA_DIR": str(data),
        "TMAX_CONFIG_DIR": str(work / "config"),
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT),
    }
    argv = [*tmax_argv(), "--model", f"script:{script}", "--cwd", str(work), "--mode", "auto",
            "--max-steps", str(steps + 5)]  # fmt: skip
    tmux = TmuxSession(argv, env, work, size=(120, 40))
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    try:
        tmux.wait_for(lambda s: "Reasoning" in s, "the app", timeout=120)
        proc = psutil.Process(tmux.pane_pid())

        def sample() -> None:
            while not stop.is_set():
                try:
                    samples.append((time.monotonic(), proc.memory_info().rss))
                except psutil.Error:
                    return
                stop.wait(0.25)

        threading.Thread(target=sample, daemon=True).start()
        t0 = time.monotonic()
        tmux.text("run the long session")
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "finished (submitted)" in s, "the end", timeout=1800, poll=0.5)
        wall = time.monotonic() - t0
        time.sleep(1.0)
        stop.set()
        sessions = sorted((data / "sessions").glob("*.jsonl"))
        casts = sorted((data / "sessions").glob("*.cast"))
        steps_at = _step_times(sessions[0]) if sessions else {}
        tmux.keys("C-q")
    finally:
        stop.set()
        tmux.close()

    def rss_at(t: float) -> float:
        before = [r for ts, r in samples if ts <= t]
        return (before[-1] if before else samples[0][1]) / 2**20

    out: dict[str, float] = {
        "wall_s": wall,
        "peak_mib": max(r for _, r in samples) / 2**20,
        "start_mib": samples[0][1] / 2**20,
        "transcript_mib": sum(p.stat().st_size for p in sessions) / 2**20,
        "cast_mib": sum(p.stat().st_size for p in casts) / 2**20,
    }
    for k in (16, 32, 48, 64):
        if k in steps_at:
            out[f"step{k}_mib"] = rss_at(steps_at[k])
    return out


def _step_times(transcript: Path) -> dict[int, float]:
    """Monotonic-clock moments when each step's command finished (from wall times)."""
    from tmax_local.agent.transcript import load_records

    offset = time.monotonic() - time.time()
    return {
        int(r["step"]): float(r["t"]) + offset
        for r in load_records(transcript)
        if r["kind"] == "CommandExecuted"
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = session(args.steps, False, work)
        loud = session(args.steps, True, work)
    total = args.steps * BYTES_PER_STEP / 2**20
    print(f"{args.steps} steps; loud run prints {total:.0f} MiB in total")
    print(f"{'run':<10} {'wall':>7} {'start':>7} {'peak':>7} "
          + " ".join(f"{'@' + str(k):>7}" for k in (16, 32, 48, 64))
          + f" {'transcript':>11} {'cast':>7}")  # fmt: skip
    for name, r in (("baseline", base), ("100 MiB", loud)):
        cols = " ".join(
            f"{r[f'step{k}_mib']:>6.0f}M" if f"step{k}_mib" in r else f"{'-':>7}"
            for k in (16, 32, 48, 64)
        )
        print(
            f"{name:<10} {r['wall_s']:>6.1f}s {r['start_mib']:>6.0f}M {r['peak_mib']:>6.0f}M "
            f"{cols} {r['transcript_mib']:>10.1f}M {r['cast_mib']:>6.1f}M"
        )
    grow = loud.get("step64_mib", loud["peak_mib"]) - loud.get("step16_mib", loud["start_mib"])
    print(f"peak loud / peak baseline: {loud['peak_mib'] / base['peak_mib']:.2f}; "
          f"growth from step 16 to the end of the loud run: {grow:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
