"""Benchmark the converter on a full-size random Qwen3.5-2B checkpoint.

Builds the checkpoint once (exact Qwen3.5-2B text shapes, bf16, ~3.8 GB) under
bench/.cache/, then runs `tmax-local convert` in a child process for each target
and prints wall time, throughput (input GB per second) and the child's peak RSS
(from wait4's rusage, so it covers llama.cpp's quantizer running in-process).

    python bench/bench_convert.py            # Q4_K_M plus a BF16 baseline
    python bench/bench_convert.py Q8_0 F16   # other targets
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
CKPT = CACHE / "qwen35-2b-random"
RSS_TARGET_MB = 1024


def build_checkpoint() -> Path:
    marker = CKPT / ".complete"
    if marker.exists():
        return CKPT
    from tmax_local.testing.checkpoints import make_full_size_2b_checkpoint

    print(f"building full-size random Qwen3.5-2B checkpoint in {CKPT} (once) ...", flush=True)
    t0 = time.perf_counter()
    make_full_size_2b_checkpoint(CKPT)
    marker.write_text("ok")
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    return CKPT


def checkpoint_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def run_convert(quant: str, out: Path) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes, exit status) of one conversion in a child process."""
    out.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "tmax_local",
        "convert",
        str(CKPT),
        "--quant",
        quant,
        "--output",
        str(out),
        "--no-progress",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024, proc.returncode  # ru_maxrss is KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("quants", nargs="*", default=["Q4_K_M", "BF16"])
    parser.add_argument("--keep", action="store_true", help="keep the converted files")
    args = parser.parse_args()

    build_checkpoint()
    size_in = checkpoint_bytes(CKPT)
    print(f"input: {size_in / 1e9:.2f} GB bf16 safetensors, {os.cpu_count()} CPUs")
    print(f"{'target':<8} {'wall s':>8} {'GB/s':>6} {'out GB':>7} {'peak RSS MB':>12}")
    worst = 0
    for quant in args.quants:
        out = CACHE / f"bench-{quant}.gguf"
        wall, rss, rc = run_convert(quant, out)
        if rc != 0:
            print(f"{quant:<8} failed (exit {rc})")
            return 1
        size_out = out.stat().st_size
        print(
            f"{quant:<8} {wall:>8.1f} {size_in / 1e9 / wall:>6.2f} {size_out / 1e9:>7.2f} "
            f"{rss / 2**20:>12.0f}",
            flush=True,
        )
        worst = max(worst, rss)
        if not args.keep:
            out.unlink()
    verdict = "under" if worst < RSS_TARGET_MB * 2**20 else "OVER"
    print(f"peak RSS {worst / 2**20:.0f} MB: {verdict} the {RSS_TARGET_MB} MB target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
