"""What the sandbox costs: per-command time and shell start, sandbox vs off.

    python bench/bench_sandbox.py [--commands 200] [--starts 10]

Both shells run in the same process, interleaved in rounds so machine load
hits both alike.  Printed: median and p90 per command for a builtin (``true``),
a program (``/bin/true``) and a file-heavy command (``ls -R /usr/share | wc``,
many path lookups under Landlock), and the median time to start a shell.
Target (issue 10): the per-command overhead of ``workspace`` over ``off`` under 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from tmax_local.shell import PtyShell
from tmax_local.shell import sandbox as sb

COMMANDS = {
    "builtin": "true",
    "program": "/bin/true",
    "files": "ls -R /usr/share/doc 2>/dev/null | wc -l >/dev/null",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=200, help="commands per kind and mode")
    parser.add_argument("--starts", type=int, default=10, help="shell starts per mode")
    args = parser.parse_args()
    support = sb.detect()
    print(f"sandbox: {support.describe()}")
    if not support.available:
        print("nothing to compare: this machine cannot sandbox")
        return
    with tempfile.TemporaryDirectory() as project:
        shells = {
            mode: PtyShell(project, sandbox_mode=mode).start() for mode in ("off", "workspace")
        }
        try:
            for shell in shells.values():  # warm caches
                for command in COMMANDS.values():
                    shell.run(command)
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.commands):
                for kind, command in COMMANDS.items():
                    for mode, shell in shells.items():
                        start = time.perf_counter()
                        shell.run(command)
                        times.setdefault((kind, mode), []).append(time.perf_counter() - start)
        finally:
            for shell in shells.values():
                shell.close()
        starts: dict[str, list[float]] = {"off": [], "workspace": []}
        for _ in range(args.starts):
            for mode in starts:
                start = time.perf_counter()
                PtyShell(project, sandbox_mode=mode).start().close()
                starts[mode].append(time.perf_counter() - start)

    print(f"{'command':<10} {'off ms':>8} {'sandbox ms':>11} {'overhead ms':>12} {'ratio':>6}")
    worst = 0.0
    for kind in COMMANDS:
        off = statistics.median(times[(kind, "off")]) * 1000
        on = statistics.median(times[(kind, "workspace")]) * 1000
        worst = max(worst, on - off)
        print(f"{kind:<10} {off:8.2f} {on:11.2f} {on - off:12.2f} {on / off:6.2f}")
    off_s = statistics.median(starts["off"]) * 1000
    on_s = statistics.median(starts["workspace"]) * 1000
    print(f"{'start':<10} {off_s:8.1f} {on_s:11.1f} {on_s - off_s:12.1f} {on_s / off_s:6.2f}")
    verdict = "met" if worst < 5 else "NOT met"
    print(f"per-command overhead (worst median): {worst:.2f} ms; target < 5 ms {verdict}")


if __name__ == "__main__":
    main()
