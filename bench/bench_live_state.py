"""What the live-shell approval check costs (issue 9 §1).

Prints, measured in one run on this machine:

1. per-command wall time of ``PtyShell.run("true")`` with the state snapshot in the
   epilogue vs the same shell with the snapshot switched off (the baseline), blocks
   interleaved; the ratio and the difference in milliseconds;
2. ``PtyShell.live_state()`` when the snapshot is fresh (read + parse two small files),
   and when it must be refreshed first (after the user typed into the terminal);
3. ``Gate.review`` for typical rule-covered commands, with the live check vs text only.

    python bench/bench_live_state.py            # defaults: 200 commands per mode
    python bench/bench_live_state.py --runs 50  # quicker
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tmax_local.approval import Approve, Gate
from tmax_local.approval.rules import Rule, RuleSet
from tmax_local.shell import PtyShell, pty_shell

TYPICAL = ["ls -la", "cat README", "git status", "echo hi && pwd", "ls | wc -l", "cd sub"]
RULES = ("ls *", "cat *", "git status", "echo *", "pwd", "wc *", "cd *")


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def per_command(shell: PtyShell, runs: int, blocks: int) -> tuple[list[float], list[float]]:
    real = pty_shell.epilogue
    with_snap: list[float] = []
    without: list[float] = []
    for block in range(blocks):
        for snapshot, bucket in ((True, with_snap), (False, without))[:: 1 if block % 2 else -1]:
            pty_shell.epilogue = real if snapshot else (lambda *_: "\\__tmax_done $?")  # type: ignore[assignment]
            for _ in range(runs // blocks):
                t0 = time.perf_counter()
                shell.run("true")
                bucket.append(time.perf_counter() - t0)
    pty_shell.epilogue = real
    return with_snap, without


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="commands per mode (default 200)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    (work / "README").write_text("hi\n")
    (work / "sub").mkdir()
    with PtyShell(work, timeout=30) as shell:
        shell.run("true")
        with_snap, without = per_command(shell, args.runs, blocks=10)
        a, b = _median_ms(with_snap), _median_ms(without)
        print(
            f"run('true') median: {a:.2f} ms with snapshot, {b:.2f} ms without "
            f"(baseline) -> ratio {a / b:.3f}, +{a - b:.2f} ms per command"
        )

        shell.run("true")
        fresh = []
        for _ in range(200):
            t0 = time.perf_counter()
            shell.live_state()
            fresh.append(time.perf_counter() - t0)
        refreshed = []
        for _ in range(20):
            shell.send_input(b"\n")
            time.sleep(0.05)
            t0 = time.perf_counter()
            shell.live_state()
            refreshed.append(time.perf_counter() - t0)
        print(
            f"live_state() median: {_median_ms(fresh):.3f} ms fresh, "
            f"{_median_ms(refreshed):.2f} ms when it must refresh (after typing)"
        )

        rules = RuleSet()
        for r in RULES:
            rules = rules.with_rule(Rule.parse(r), "allow")
        gate = Gate("ask", rules, cwd=work)
        for live in (None, shell):
            times: list[float] = []
            for _ in range(30):
                for cmd in TYPICAL:
                    t0 = time.perf_counter()
                    v = gate.review(cmd, lambda _r: Approve(), cwd=shell.cwd, live=live)
                    times.append(time.perf_counter() - t0)
                    assert v.approved_by == "rule", (cmd, v.decision.reasons)
            label = "text + live shell" if live else "text only (baseline)"
            print(
                f"Gate.review median over {len(TYPICAL)} typical commands: "
                f"{_median_ms(times):.3f} ms ({label})"
            )


if __name__ == "__main__":
    main()
