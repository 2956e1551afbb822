"""TUI benchmarks; prints figures (no assertions).

1. Decode speed with the TUI rendering the stream vs headless, same model, same prompt:
   the engine generates in a thread; "headless" drops the text, "tui" feeds every piece
   to a running app exactly as the agent does (EventPump → reasoning pane). Ratio tui/headless.
2. Time from launching `tmax-local` (in tmux, a real terminal) to an interactive screen
   (the task input drawn), with a GGUF model still loading in the background.
3. CPU used by the app process while a command floods the terminal pane (`seq`), measured
   with psutil on the real CLI in tmux, next to the time the flood takes.

Usage: python bench/bench_tui.py [--model PATH.gguf] [--tokens 256] [--runs 3]
Without --model a tiny random Qwen 3.5 checkpoint is converted to GGUF in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tmax_local.testing.tmux import TmuxSession, tmax_argv  # noqa: E402 (after sys.path)


def tiny_model(directory: Path) -> Path:
    from tmax_local.convert import convert_checkpoint
    from tmax_local.testing.checkpoints import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(directory / "ckpt")
    return Path(convert_checkpoint(ckpt, "F16", directory / "tiny-F16.gguf", progress=False))


def engine_for(model: Path, tokens: int):
    from tmax_local.agent.engine import EngineOptions, LlamaEngine

    # No grammar: grammar sampling over a 248k vocabulary would dominate the timing.
    return LlamaEngine(model, EngineOptions(ctx=4096, seed=1))


def decode_once(engine, tokens: int, on_text) -> float:
    from tmax_local.agent import harness

    engine.reset()
    prompt = harness.render_prompt("Write a long story about terminals.")
    gen = engine.generate(prompt, on_text=on_text, cancel=threading.Event(), max_tokens=tokens)
    return gen.tokens_generated / gen.generation_seconds


async def decode_with_tui(engine, tokens: int) -> float:
    from tmax_local.agent import events as ev
    from tmax_local.tui.app import TuiOptions, make_app

    app = make_app(TuiOptions())
    app.start_shell_on_mount = False
    app.load_model_on_mount = False
    result: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.handle_event(ev.StepStarted(1))

        loop = asyncio.get_running_loop()
        finished = asyncio.Event()

        def work() -> None:
            result.append(
                decode_once(engine, tokens, lambda t: app.pump.put(ev.ReasoningDelta(1, t)))
            )
            loop.call_soon_threadsafe(finished.set)

        t = threading.Thread(target=work)
        t.start()
        await finished.wait()  # the app's loop runs freely meanwhile (no polling here)
        t.join()
        await pilot.pause()
        assert app.reasoning.steps[1].raw  # the stream was rendered
    return result[0]


def decode_in_thread(engine, tokens: int) -> float:
    """Headless: the same generation in a worker thread (as the agent runs), text dropped."""
    result: list[float] = []
    t = threading.Thread(target=lambda: result.append(decode_once(engine, tokens, lambda t: None)))
    t.start()
    t.join()
    return result[0]


def bench_decode(model: Path, tokens: int, runs: int) -> None:
    engine = engine_for(model, tokens)
    decode_once(engine, 16, lambda t: None)  # warm up
    head, tui = [], []
    for _ in range(runs):
        head.append(decode_in_thread(engine, tokens))
        tui.append(asyncio.run(decode_with_tui(engine, tokens)))
    h, u = statistics.median(head), statistics.median(tui)
    print(f"decode tok/s headless: {h:.1f} (runs {', '.join(f'{x:.1f}' for x in head)})")
    print(f"decode tok/s with TUI: {u:.1f} (runs {', '.join(f'{x:.1f}' for x in tui)})")
    print(f"ratio TUI/headless:    {u / h:.3f}  (target >= 0.97)")


def wait_seconds(tm: TmuxSession, needle: str, timeout: float = 60) -> float:
    """Seconds from the session's start until ``needle`` is on screen."""
    tm.wait_for(lambda screen: needle in screen, repr(needle), timeout=timeout, poll=0.01)
    return time.perf_counter() - tm.started


def bench_startup(model: Path, work: Path, runs: int) -> None:
    times = []
    for _ in range(runs):
        tm = TmuxSession(
            [*tmax_argv(), "--model", str(model), "--cwd", str(work)],
            {"TMAX_DATA_DIR": str(work / "data"), "TERM": "xterm-256color"},
            work,
            size=(120, 40),
        )
        try:
            times.append(wait_seconds(tm, "Describe a task"))
            loaded = wait_seconds(tm, "F16", timeout=120)
        finally:
            tm.close()
    print(
        f"launch → interactive screen: median {statistics.median(times):.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in times)}; target <= 1.5 s); "
        f"model shown loaded after {loaded:.2f} s (last run)"
    )


def flood_without_ui(work: Path, lines: int) -> tuple[float, float]:
    """The same flood through PtyShell alone, in this process: (wall s, CPU s)."""
    import psutil

    from tmax_local.shell import PtyShell

    proc = psutil.Process()
    with PtyShell(work) as shell:
        c0, t0 = proc.cpu_times(), time.perf_counter()
        shell.run(f"seq 1 {lines}")
        c1, t1 = proc.cpu_times(), time.perf_counter()
    return t1 - t0, (c1.user - c0.user) + (c1.system - c0.system)


def bench_flood(work: Path, lines: int) -> None:
    import psutil

    call = (
        "Flooding.\n<tool_call>\n<function=bash>\n<parameter=command>\n"
        f"seq 1 {lines}\n</parameter>\n</function>\n</tool_call>"
    )
    done = (
        "Done.\n<tool_call>\n<function=bash>\n<parameter=command>\n"
        "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n</parameter>\n</function>\n</tool_call>"
    )
    script = work / "flood.json"
    script.write_text(json.dumps([call, done]))
    tm = TmuxSession(
        [
            *tmax_argv(),
            "--model",
            f"script:{script}",
            "--cwd",
            str(work),
            "--mode",
            "auto",
            "--task",
            "flood the terminal",
        ],
        {"TMAX_DATA_DIR": str(work / "data"), "TERM": "xterm-256color"},
        work,
        size=(120, 40),
    )
    try:
        wait_seconds(tm, "Describe a task")
        proc = psutil.Process(tm.pane_pid())
        c0, t0 = proc.cpu_times(), time.perf_counter()
        wait_seconds(tm, "finished (", timeout=300)
        c1, t1 = proc.cpu_times(), time.perf_counter()
        cpu = (c1.user - c0.user) + (c1.system - c0.system)
        wall = t1 - t0
        print(
            f"flood of {lines} lines ({len(str(lines)) * lines / 1e6:.1f}+ MB): "
            f"{wall:.2f} s wall, app process CPU {cpu:.2f} s = {100 * cpu / wall:.0f}% of "
            f"one core"
        )
        wall0, cpu0 = flood_without_ui(work, lines)
        print(
            f"  same flood through PtyShell alone (no UI): {wall0:.2f} s wall, CPU {cpu0:.2f} s"
            f" = {100 * cpu0 / wall0:.0f}%; UI share ~ {cpu - cpu0:.2f} s CPU"
        )
    finally:
        tm.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--flood-lines", type=int, default=200_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or tiny_model(work)
        print(f"model: {model.name}")
        bench_decode(model, args.tokens, args.runs)
        if shutil.which("tmux"):
            bench_startup(model, work, args.runs)
            bench_flood(work, args.flood_lines)
        else:
            print("tmux not found: skipping the launch and flood figures")


if __name__ == "__main__":
    main()
