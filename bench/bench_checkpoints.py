"""Benchmark undo checkpoints on a 10,000-file / 200 MB project.

Runs the same commands in the real PTY shell twice in one process: without checkpoints
(the baseline) and with a checkpoint before each command (what `tmax-local run` does).
Prints, as medians over the commands:

- baseline: the command alone (`PtyShell.run`);
- checkpoint + command, and the overhead (difference) and ratio against the baseline;
- the checkpoint alone, split into its scan (find + git's .gitignore answer) and the rest;

for commands that change 1 file ("little changed", the target is an overhead under
100 ms) and 100 files, twice: with change detection by full scans (every path stat'ed) and
by inotify (only reported paths stat'ed, the default on Linux), and the ratio of the two.
Also the first, full snapshot (every file read, compressed and stored) and a restore of
one step.

    python bench/bench_checkpoints.py                  # 10,000 files, 200 MB, 25 commands
    python bench/bench_checkpoints.py --files 2000 --mb 40 --commands 10   # quicker
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_project(root: Path, files: int, total_mb: int, seed: int = 0) -> list[str]:
    """``files`` files in nested directories, ``total_mb`` MB in all (a few large files, many
    small ones, as in a source tree), plus a .gitignore'd build directory."""
    rng = random.Random(seed)
    total = total_mb * 1024 * 1024
    big = max(1, files // 200)  # 0.5% of the files hold half the bytes
    sizes = [total // 2 // big] * big
    small = files - big
    sizes += [max(1, int(rng.expovariate(1 / ((total // 2) / small)))) for _ in range(small)]
    rels = []
    for i, size in enumerate(sizes):
        d = f"pkg{i % 20}/mod{(i // 20) % 25}/sub{i % 3}"
        rel = f"{d}/file{i}.{'bin' if size > 1 << 20 else 'txt'}"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
        rels.append(rel)
    (root / ".gitignore").write_text("build/\n*.o\n")
    (root / "build").mkdir()
    for i in range(50):
        (root / "build" / f"x{i}.o").write_bytes(b"o" * 1000)
    return rels


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def cpu_s() -> float:
    """CPU time of this process and its finished children (find, git): on a loaded
    machine this is the figure that does not depend on what else runs."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--commands", type=int, default=25)
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = ap.parse_args()

    from tmax_local.shell import PtyShell
    from tmax_local.undo import restore as rs
    from tmax_local.undo.checkpointer import SessionCheckpointer
    from tmax_local.undo.scan import ensure_ignore_repo, scan

    tmp = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    project = tmp / "project"
    project.mkdir()
    t0 = time.perf_counter()
    rels = make_project(project, args.files, args.mb)
    size = sum(os.path.getsize(project / r) for r in rels)
    print(
        f"project: {len(rels)} files, {size / 2**20:.0f} MB, made in "
        f"{time.perf_counter() - t0:.1f} s ({tmp}); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    rng = random.Random(1)
    small = [r for r in rels if r.endswith(".txt")]

    def command(n_changed: int, k: int) -> str:
        picks = rng.sample(small, n_changed)
        return " && ".join(f"echo {k} >> {p}" for p in picks)

    overheads: dict[tuple[str, int], float] = {}
    with PtyShell(project) as shell:
        shell.run("true", 10)
        for label, watch in (("full scan", False), ("inotify", True)):
            print(f"\n=== checkpoints with {label} change detection ===")
            ck = SessionCheckpointer(project, base=tmp / f"store-{watch}", watch=watch)
            t, c0 = time.perf_counter(), cpu_s()
            first = ck.before_command("bench", 0, "first")
            full_s, full_cpu = time.perf_counter() - t, cpu_s() - c0
            print(
                f"first snapshot (reads and stores everything): {full_s:.2f} s "
                f"({size / 2**20 / full_s:.0f} MB/s; CPU {full_cpu:.2f} s), "
                f"{len(first.not_covered)} not covered"
            )
            time.sleep(0.1)
            ck.before_command("bench", 0, "settle")  # files read within the racy window
            for n_changed in (1, 100):
                base, withck, snap, scans, cpu = [], [], [], [], []
                for k in range(args.commands):
                    cmd = command(n_changed, k)
                    t = time.perf_counter()
                    shell.run(cmd, 60)
                    base.append(time.perf_counter() - t)
                time.sleep(0.1)
                ck.before_command("bench", 0, "settle")
                for k in range(args.commands):
                    cmd = command(n_changed, k)
                    c0 = cpu_s()
                    t = time.perf_counter()
                    ck.before_command("bench", k + 1, cmd)
                    t1 = time.perf_counter()
                    cpu.append(cpu_s() - c0)
                    shell.run(cmd, 60)
                    t2 = time.perf_counter()
                    withck.append(t2 - t)
                    snap.append(t1 - t)
                    t = time.perf_counter()
                    scan(project, ignore_repo=ck.store.path / "ignore.git", skip=[])
                    scans.append(time.perf_counter() - t)
                b, w, s, sc = median_ms(base), median_ms(withck), median_ms(snap), median_ms(scans)
                overheads[(label, n_changed)] = w - b
                print(f"\ncommands changing {n_changed} file(s), median of {args.commands}:")
                print(f"  baseline (no checkpoint)     {b:8.1f} ms")
                print(f"  checkpoint + command         {w:8.1f} ms   ratio {w / b:5.2f}x")
                print(f"  overhead per command         {w - b:8.1f} ms   (target < 100 ms)")
                print(f"  checkpoint alone             {s:8.1f} ms   (a full scan: {sc:.1f} ms)")
                c = median_ms(cpu)
                print(f"  checkpoint CPU time          {c:8.1f} ms   (self + find/git)")
            assert ensure_ignore_repo(ck.store.path / "ignore.git")
            # Restore one step back (undo the last command).
            store = ck.store
            last = store.records("bench")[-1]["tree"]
            shell.run(command(1, 999), 60)
            t = time.perf_counter()
            r = rs.restore(store, last)
            print(
                f"\nrestore one step (1 file back): {(time.perf_counter() - t) * 1000:.0f} ms "
                f"(includes its own undo checkpoint and the check scan), "
                f"{len(r.left_different)} left different"
            )
            store.close()
        du = sum(p.stat().st_size for p in (tmp / "store-True").rglob("*") if p.is_file())
        print(f"\nstore size: {du / 2**20:.0f} MB for {size / 2**20:.0f} MB of project")
        for n_changed in (1, 100):
            full, fast = overheads[("full scan", n_changed)], overheads[("inotify", n_changed)]
            print(
                f"overhead, {n_changed} file(s) changed: inotify {fast:.1f} ms vs full scan "
                f"{full:.1f} ms ({fast / full:.2f}x)"
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
