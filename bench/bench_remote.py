"""Benchmark the remote engine: per-turn latency local vs through llama-server, HTTP overhead.

Same GGUF, same context, threads, flash attention and sampling on both sides:

- local: ``LlamaEngine`` (llama-cpp-python in this process);
- remote: ``RemoteEngine`` → ``llama-server`` on 127.0.0.1 (built by
  ``scripts/build_llama_server.sh``), token-id prompts, streamed replies.

Each side runs the same conversation: the harness prompt, then ``--turns`` observation turns
of ~``--obs-chars`` characters, about ``--gen`` new tokens per turn (a grammar forces letter /
newline pairs, then the end of the turn, on both sides). Prints per
turn: tokens appended, time to first token, generated tokens, total turn time; then the ratio
remote/local of the median turn and the HTTP overhead per streamed token: the client's
measured time per generated token minus the server's own (``timings.predicted_ms``).

    python bench/bench_remote.py                 # tiny model (built once under bench/.cache)
    python bench/bench_remote.py --gguf bench/.cache/agent-Q4_K_M.gguf --gen 64   # 2B
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "bench" / ".cache"


def tiny_gguf() -> Path:
    out = CACHE / "remote-tiny-F32.gguf"
    if out.exists():
        return out
    from tmax_local.convert import convert_checkpoint
    from tmax_local.testing.checkpoints import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(CACHE / "remote-tiny-ckpt", hidden_size=256, num_layers=8)
    return convert_checkpoint(str(ckpt), quant="F32", output=out, progress=False)


def grammar(n: int) -> str:
    # About n tokens: n/2 "letter, newline" pairs (two tokens each when tokenized canonically;
    # a sampler may take multi-character tokens, so the real count is printed per turn).
    # The same grammar runs on both sides, so both sample the same kind of reply.
    return f'root ::= ([a-z] "\\n"){{{max(1, n // 2)}}}'


def run_turns(engine, turns: int, obs_chars: int, gen: int) -> list[dict]:
    from tmax_local.agent import harness

    cancel = threading.Event()
    rows = []
    obs = ("lorem ipsum dolor sit amet " * (obs_chars // 27 + 1))[:obs_chars]
    append = harness.render_prompt("List the files.")
    for turn in range(turns + 1):
        first: list[float] = []
        t0 = time.perf_counter()

        def on_text(piece: str, first=first) -> None:
            if not first:
                first.append(time.perf_counter())

        g = engine.generate(append, on_text=on_text, cancel=cancel, max_tokens=gen + 8)
        t1 = time.perf_counter()
        rows.append(
            {
                "turn": turn,
                "appended": engine.count_tokens(append),
                "ttft_ms": ((first[0] if first else t1) - t0) * 1000,
                "generated": g.tokens_generated,
                "total_ms": (t1 - t0) * 1000,
                "gen_ms": (t1 - (first[0] if first else t1)) * 1000,
            }
        )
        append = harness.tool_response_turn(
            f"{obs}\n\n(exit_code=0)", model_closed_turn=g.finish == "stop"
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, default=None, help="model (default: a tiny random one)")
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--obs-chars", type=int, default=1500)
    ap.add_argument("--gen", type=int, default=64, help="tokens generated per turn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=8192)
    args = ap.parse_args()

    from tmax_local.agent.engine import EngineOptions, LlamaEngine
    from tmax_local.agent.remote import RemoteEngine, RemoteOptions
    from tmax_local.testing.llama_server import LlamaServer, find_or_build

    gguf = args.gguf or tiny_gguf()
    g = grammar(args.gen)
    binary = find_or_build()
    print(
        f"model {gguf.name}; {args.turns} observation turns of {args.obs_chars} chars; "
        f"{args.gen} tokens per reply; {args.threads} threads; llama-server {binary}"
    )

    local = LlamaEngine(
        gguf,
        EngineOptions(ctx=args.ctx, threads=args.threads, seed=1, flash_attn=True, grammar=g),
    )
    run_turns(local, 1, args.obs_chars, args.gen)  # warm-up
    local.reset()
    local.llm.reset()
    loc = run_turns(local, args.turns, args.obs_chars, args.gen)
    local.close()

    log = CACHE / "bench_remote_server.log"
    CACHE.mkdir(parents=True, exist_ok=True)
    with LlamaServer(
        binary, gguf, ctx=args.ctx, threads=args.threads, extra=["-fa", "on"], log=log
    ) as srv:
        remote = RemoteEngine(RemoteOptions(srv.url, seed=1, extra_body={"grammar": g}))
        run_turns(remote, 1, args.obs_chars, args.gen)  # warm-up (the server caches it)
        remote = RemoteEngine(RemoteOptions(srv.url, seed=1, extra_body={"grammar": g}))
        rem = run_turns(remote, args.turns, args.obs_chars, args.gen)
        reports = remote.turn_log

    print(
        "\nturn  appended |  local: ttft_ms  gen  total_ms |  remote: ttft_ms  gen  total_ms"
        "  evaluated  cached"
    )
    for a, b, r in zip(loc, rem, reports, strict=True):
        print(
            f"{a['turn']:>4}  {a['appended']:>8} | {a['ttft_ms']:>14.1f} {a['generated']:>4}"
            f" {a['total_ms']:>9.1f} | {b['ttft_ms']:>15.1f} {b['generated']:>4}"
            f" {b['total_ms']:>9.1f} {r.evaluated!s:>10} {r.cached!s:>7}"
        )
    later = slice(1, None)  # observation turns (turn 0 is the prompt)
    med_local = statistics.median(x["total_ms"] for x in loc[later])
    med_remote = statistics.median(x["total_ms"] for x in rem[later])
    print(
        f"\nmedian observation turn: local {med_local:.1f} ms, remote {med_remote:.1f} ms, "
        f"ratio remote/local {med_remote / med_local:.2f}"
    )
    per_tok_client = [b["gen_ms"] / (b["generated"] - 1) for b in rem[later] if b["generated"] > 1]
    per_tok_server = [
        r.server_gen_ms / max(1, r.generated - 1)
        for r in reports[later]
        if r.server_gen_ms is not None and r.generated > 1
    ]
    per_tok_local = [a["gen_ms"] / (a["generated"] - 1) for a in loc[later] if a["generated"] > 1]
    c, s, lo = (statistics.median(v) for v in (per_tok_client, per_tok_server, per_tok_local))
    print(
        f"per generated token: local {lo:.2f} ms, server's own {s:.2f} ms, "
        f"client-side through HTTP {c:.2f} ms"
    )
    print(f"HTTP overhead per streamed token: {c - s:.2f} ms (client - server's own timing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
