"""Does a turn's cost stay flat as history grows? Flash attention on vs off, same run.

Loads the full-size random Qwen3.5-2B at Q4_K_M (built once by bench_agent.py's cache) twice,
once per setting; after a warm-up turn, evaluates a short and a long history and times the
evaluation of a ~470-token turn appended to each (best of two). Prints seconds and the
long/short growth ratio per setting (the agent issue's target: <= 1.2x). Random token ids:
the cost of attention does not depend on what the tokens say.

    python bench/bench_flash_attn.py [--short 1000] [--long 16000] [--new 470] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_agent import build_gguf


def turn_seconds(llm, history: list[int], new: list[int]) -> float:
    llm.reset()
    llm.eval(history)
    t0 = time.perf_counter()
    llm.eval(new)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=int, default=1000)
    ap.add_argument("--long", type=int, default=16000)
    ap.add_argument("--new", type=int, default=470)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import numpy as np
    from llama_cpp import Llama

    from tmax_local.agent.engine import default_threads

    path = build_gguf()
    threads = args.threads or default_threads()
    rng = np.random.default_rng(0)
    history = [int(t) for t in rng.integers(1000, 200_000, size=args.long)]
    new = [int(t) for t in rng.integers(1000, 200_000, size=args.new)]
    print(f"model {path.name}, {threads} threads, turn of {args.new} tokens")
    for flash in (False, True):
        llm = Llama(
            model_path=str(path),
            n_ctx=args.long + args.new + 256,
            n_batch=512,
            n_threads=threads,
            n_gpu_layers=0,
            flash_attn=flash,
            verbose=False,
        )
        turn_seconds(llm, history[:64], new)  # warm-up: page in the weights, build graphs
        short = min(turn_seconds(llm, history[: args.short], new) for _ in range(2))
        long = min(turn_seconds(llm, history, new) for _ in range(2))
        print(
            f"flash_attn={flash!s:5}  after {args.short:>6} tokens {short:6.2f} s   "
            f"after {args.long:>6} tokens {long:6.2f} s   growth {long / short:.2f}x",
            flush=True,
        )
        del llm
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
