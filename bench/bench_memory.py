"""Check `tmax_local.memory`'s estimate against measured resident memory.

For the full-size random Qwen3.5-2B at Q4_K_M (built once under bench/.cache/, as
bench/bench_convert.py does) and each context length × KV-cache type, a child process loads
the model with llama.cpp (flash attention on, n_batch 512, like `run`), evaluates a
1,024-token prompt and samples 16 tokens, then reports its peak RSS (VmHWM). The table
shows the estimate next to the measurement, their ratio, and llama.cpp's own buffer sizes
from its log. A child that only imports llama_cpp and tmax_local gives the process baseline
(the estimate's ``base`` term), measured in the same run.

    python bench/bench_memory.py                       # 8k/32k/64k × f16/q8_0
    python bench/bench_memory.py --ctx 8192 --kv f16   # one cell
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
GGUF = ROOT / "bench" / ".cache" / "qwen35-2b-random-Q4_K_M.gguf"


def build_gguf() -> Path:
    if GGUF.is_file():
        return GGUF
    from bench_convert import build_checkpoint  # type: ignore[import-not-found]

    ckpt = build_checkpoint()
    print(f"converting {ckpt} to Q4_K_M (once) ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "tmax_local", "convert", str(ckpt), "--quant", "Q4_K_M",
         "--output", str(GGUF), "--no-progress"],
        check=True,
    )  # fmt: skip
    return GGUF


def peak_rss() -> int:
    """This process's peak resident set (VmHWM: unlike getrusage's ru_maxrss it starts
    afresh at exec, so the parent's size at fork does not count)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def child(ctx: int, kv: str, threads: int) -> None:
    """Runs in the child: load, evaluate, print one JSON line with RSS figures."""
    import numpy as np

    import tmax_local  # noqa: F401  (part of the baseline, as in the app)

    if ctx == 0:  # baseline: the process with the libraries, no model
        import llama_cpp  # noqa: F401

        print(json.dumps({"peak_rss": peak_rss()}))
        return
    from llama_cpp import Llama

    from tmax_local.agent.engine import CACHE_TYPES

    llm = Llama(
        model_path=str(GGUF), n_ctx=ctx, n_batch=512, n_ubatch=512, n_threads=threads,
        flash_attn=True, type_k=CACHE_TYPES[kv], type_v=CACHE_TYPES[kv], verbose=True,
        use_mmap=True, seed=1,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    prompt = [int(t) for t in rng.integers(1000, 200000, size=1024)]
    for n, _tok in enumerate(llm.generate(prompt, temp=0.7, top_p=0.95, top_k=0, reset=True)):
        if n >= 15:
            break
    print(json.dumps({"peak_rss": peak_rss()}), flush=True)
    llm.close()


def _llama_buffers(log: str) -> dict[str, float]:
    """MiB figures llama.cpp printed: model, KV (attention), recurrent state, compute."""
    out: dict[str, float] = {}
    pats = {
        "model": r"CPU_Mapped model buffer size\s*=\s*([\d.]+) MiB",
        "kv": r"llama_kv_cache:\s+CPU KV buffer size\s*=\s*([\d.]+) MiB",
        "recurrent": r"llama_memory_recurrent:\s+CPU RS buffer size\s*=\s*([\d.]+) MiB",
        "compute": r"CPU compute buffer size\s*=\s*([\d.]+) MiB",
        "output": r"CPU\s+output buffer size\s*=\s*([\d.]+) MiB",
    }
    for key, pat in pats.items():
        found = re.findall(pat, log)
        if found:
            out[key] = sum(float(x) for x in found)
    return out


def measure(ctx: int, kv: str, threads: int) -> tuple[int, dict[str, float]]:
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(ctx), kv, str(threads)],
            stdout=subprocess.PIPE, stderr=err, text=True, check=False,
        )  # fmt: skip
        err.seek(0)
        log = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{log[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(data["peak_rss"]), _llama_buffers(log)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ctx", type=int, action="append")
    ap.add_argument("--kv", action="append", choices=("f16", "q8_0", "f32", "q4_0"))
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args()
    gguf = build_gguf()
    from tmax_local import memory

    facts = memory.ModelFacts.from_gguf(gguf)
    print(
        f"model {gguf.name}: {facts.weights_bytes / 2**20:.0f} MiB of tensors, "
        f"{facts.n_attention_layers}/{facts.n_layer} attention layers, "
        f"KV {memory.kv_bytes_per_token(facts) / 1024:.1f} KiB/token at f16, "
        f"recurrent state {memory.recurrent_bytes(facts) / 2**20:.1f} MiB"
    )
    base, _ = measure(0, "f16", args.threads)
    print(f"baseline process (python + tmax_local + llama_cpp): {base / 2**20:.0f} MiB "
          f"(estimate's base term: {memory.BASE_BYTES / 2**20:.0f} MiB)")  # fmt: skip
    print()
    head = (f"{'ctx':>6} {'KV':>5} {'estimate':>9} {'measured':>9} {'est/meas':>8}   "
            "llama.cpp buffers (MiB): model / KV / recurrent / compute / output")  # fmt: skip
    print(head)
    print("-" * len(head))
    for ctx in args.ctx or [8192, 32768, 65536]:
        for kv in args.kv or ["f16", "q8_0"]:
            est = memory.estimate(facts, ctx, kv, kv)
            peak, bufs = measure(ctx, kv, args.threads)
            b = " / ".join(
                f"{bufs.get(k, float('nan')):.0f}"
                for k in ("model", "kv", "recurrent", "compute", "output")
            )
            print(
                f"{ctx:>6} {kv:>5} {est.total / 2**20:>8.0f}M {peak / 2**20:>8.0f}M "
                f"{est.total / peak:>8.2f}   {b}   (est. KV {est.kv / 2**20:.0f}, "
                f"compute {est.compute / 2**20:.0f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
