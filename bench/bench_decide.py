"""How long `approval.decide` takes for typical commands; prints figures (no assertions).

For each command: median and p95 of ``decide(command, "ask", rules, cwd)`` over many runs,
after a warm-up (the tree-sitter parser is built once per process). The baseline in the
same run is the parse alone (`syntax.parse_parts`), so the ratio shows what expansion,
labelling (assignment forms, arithmetic, argument-driven code, credential paths) and rule
matching add on top of parsing.

With ``--baseline DIR`` (another checkout, e.g. main before issue 9) the same commands are
also timed with that checkout's ``decide``, in a child process, and the ratio is printed.

Usage: python bench/bench_decide.py [--runs 300] [--baseline /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tmax_local.approval import RuleSet, decide
from tmax_local.approval.syntax import parse_parts

COMMANDS = [
    "ls -la",
    "git status --short",
    "git log --oneline -20",
    "cat README.md | grep -n TODO > notes.txt",
    "python3 -m pytest -q tests/test_x.py",
    "sed -n '1,20p' src/main.py",
    "sed -i 's/foo/bar/g' src/a.py src/b.py",
    "awk -F: '{print $1}' /etc/passwd | sort | uniq -c",
    "find . -name '*.py' -exec grep -l TODO {} +",
    "tar -czf out.tgz src && ls -la out.tgz",
    "cd build && cmake .. && make -j4",
    'for f in *.txt; do echo "$f"; done',
    "export PATH=$PWD/bin:$PATH",
    "echo $((i + 1))",
    "cat <<'EOF' > notes.md\n# Notes\nsome text\nEOF",
]
RULES = RuleSet.of(
    allow=[
        "ls *",
        "git status *",
        "git log *",
        "cat *",
        "grep *",
        "sed *",
        "awk *",
        "sort *",
        "uniq *",
        "find *",
        "tar *",
        "cd *",
        "echo *",
        "python3 *",
        "make *",
        "cmake *",
    ]
)


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


_CHILD = """
import json, statistics, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from tmax_local.approval import RuleSet, decide
commands, rules, runs = json.loads(sys.stdin.read())
rs = RuleSet.of(allow=rules)
cwd = tempfile.mkdtemp()
for c in commands:
    decide(c, "ask", rs, cwd)
out = []
for c in commands:
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        decide(c, "ask", rs, cwd)
        t.append((time.perf_counter() - t0) * 1000)
    out.append(statistics.median(t))
print(json.dumps(out))
"""


def baseline(src: Path, runs: int) -> list[float]:
    payload = json.dumps([COMMANDS, [r.pattern for r in RULES.allow], runs])
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src)],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--baseline", type=Path, help="another checkout to time the same way")
    args = ap.parse_args()
    cwd = Path(tempfile.mkdtemp())
    for c in COMMANDS:  # warm-up
        decide(c, "ask", RULES, cwd)
    print(f"{'command':58} {'decide ms':>10} {'p95':>7} {'parse ms':>9} {'ratio':>6}")
    medians = []
    for c in COMMANDS:
        d = timed(lambda c=c: decide(c, "ask", RULES, cwd), args.runs)
        p = timed(lambda c=c: parse_parts(c), args.runs)
        md, mp = statistics.median(d), statistics.median(p)
        p95 = sorted(d)[int(0.95 * len(d))]
        medians.append(md)
        shown = c.replace("\n", "\\n")
        shown = shown if len(shown) <= 56 else shown[:53] + "..."
        print(f"{shown:58} {md:10.3f} {p95:7.3f} {mp:9.3f} {md / mp:6.1f}")
    print(f"\nmedian of medians: {statistics.median(medians):.3f} ms over {len(COMMANDS)} commands")
    if args.baseline is not None:
        base = baseline(args.baseline, args.runs)
        ratios = [m / b for m, b in zip(medians, base, strict=True)]
        print(
            f"baseline {args.baseline}: median of medians {statistics.median(base):.3f} ms; "
            f"this tree / baseline per command: median {statistics.median(ratios):.2f}x, "
            f"max {max(ratios):.2f}x"
        )


if __name__ == "__main__":
    main()
