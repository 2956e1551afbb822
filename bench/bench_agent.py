"""Benchmark the agent's llama.cpp backend on a full-size random Qwen3.5-2B at Q4_K_M.

Prints three figures:

1. decode tokens/s through ``LlamaEngine.generate`` (the agent's path: streaming, UTF-8
   decoding, callbacks) vs a bare ``Llama.generate`` loop on the same loaded file and the
   same sampling (ratio; target >= 0.97);
2. for a turn that appends ~500 tokens after 1k / 16k / 32k tokens of history: tokens
   evaluated and time to first token, append-only (the agent) vs the naive alternative of
   re-rendering the whole chat through the Qwen 3.5 template each turn (for a hybrid model
   any divergence from the cached prefix means a full re-prefill, and the template's
   re-rendering of earlier assistant turns does diverge);
3. resident memory with a 65,536-token context.

The checkpoint (~3.8 GB) and the GGUF (~1.3 GB) are built once under bench/.cache/.

    python bench/bench_agent.py                       # everything
    python bench/bench_agent.py --histories 1000,4000 --decode-tokens 64   # quicker
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "bench" / ".cache"
CKPT = CACHE / "qwen35-2b-random"
GGUF = CACHE / "agent-Q4_K_M.gguf"


def build_gguf() -> Path:
    if GGUF.exists():
        return GGUF
    marker = CKPT / ".complete"
    if not marker.exists():
        from tmax_local.testing.checkpoints import make_full_size_2b_checkpoint

        print(f"building the random Qwen3.5-2B checkpoint in {CKPT} (once) ...", flush=True)
        make_full_size_2b_checkpoint(CKPT)
        marker.write_text("ok")
    from tmax_local.convert import convert_checkpoint

    print(f"converting to {GGUF} (once) ...", flush=True)
    return convert_checkpoint(
        str(CKPT), quant="Q4_K_M", output=GGUF, progress=False, overwrite=False
    )


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def load(path: Path, n_ctx: int, threads: int):
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_batch=512,
        n_ubatch=512,
        n_gpu_layers=0,
        verbose=False,
        seed=1,
    )


def raw_decode(llm, prompt: list[int], n: int) -> tuple[int, float]:
    """A bare llama-cpp-python loop: (tokens, seconds from first to last token)."""
    llm.reset()
    got, t_first = 0, None
    for _tok in llm.generate(prompt, temp=0.7, top_p=0.95, top_k=0, min_p=0.0, repeat_penalty=1.0):
        if t_first is None:
            t_first = time.perf_counter()
        got += 1
        if got >= n:
            break
    return got, time.perf_counter() - (t_first or time.perf_counter())


def agent_decode(engine, prompt_text: str, n: int) -> tuple[int, float]:
    engine.reset()
    g = engine.generate(prompt_text, on_text=lambda s: None, cancel=threading.Event(), max_tokens=n)
    return g.tokens_generated, g.generation_seconds


def bench_decode(engine, n: int, rounds: int) -> None:
    from tmax_local.agent import harness

    prompt_text = harness.render_prompt("Find the largest file under /var/log and print its size.")
    prompt = engine.tokenize(prompt_text)
    raw, ours = [], []
    for _ in range(rounds):  # interleaved, so machine load hits both alike
        t, s = raw_decode(engine.llm, prompt, n)
        raw.append(max(0, t - 1) / s if s > 0 else 0.0)  # rate between first and last token
        t, s = agent_decode(engine, prompt_text, n)
        ours.append(max(0, t - 1) / s if s > 0 else 0.0)
    best_raw, best_ours = max(raw), max(ours)
    print(
        f"decode ({n} tokens, best of {rounds}): raw llama-cpp-python {best_raw:.2f} tok/s, "
        f"agent {best_ours:.2f} tok/s, ratio {best_ours / best_raw:.3f}",
        flush=True,
    )


def filler_observation(engine, tokens: int) -> str:
    """Shell-like output of about ``tokens`` tokens."""
    line = "drwxr-xr-x  2 root root  4096 Jun 15 21:13 build-artifacts-cache\n"
    per = max(1, engine.count_tokens(line))
    return line * max(1, tokens // per)


def history_turns(engine, start: int):
    """Endless (stream text, chat messages) pairs of one more tool turn (~1k tokens each)."""
    from tmax_local.agent import harness
    from tmax_local.agent.parser import bash_reply

    i = start
    while True:
        command = f"ls -la /srv/build/part{i}"
        thought = f"I should look at part {i} of the build tree to see what is there."
        obs = harness.format_observation(filler_observation(engine, 900), 0)
        text = bash_reply(command, thought) + harness.IM_END + harness.tool_response_turn(obs)
        msgs = [
            {
                "role": "assistant",
                "content": thought,
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {"name": "bash", "arguments": {"command": command}},
                    }
                ],
            },
            {"role": "tool", "content": obs},
        ]
        yield text, msgs
        i += 1


def render_template(messages: list[dict]) -> str:
    import json

    import jinja2
    import jinja2.sandbox

    from tmax_local.agent import harness

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(RuntimeError(m))
    return env.from_string(harness.chat_template_source()).render(
        messages=messages, tools=[harness.BASH_TOOL], add_generation_prompt=True
    )


def bench_turns(engine, naive_llm, histories: list[int], new_tokens: int) -> None:
    """One conversation grows through the history sizes (append-only, its prefill untimed);
    at each size, one ~``new_tokens`` turn is timed there and, on a second context, the
    same chat re-rendered by the template and evaluated from scratch."""
    from tmax_local.agent import harness

    task = "Investigate the build directory and report what takes space."
    messages = [
        {"role": "system", "content": harness.prompts().system},
        {"role": "user", "content": harness.render_instance(task)},
    ]
    engine.reset()
    nothing = threading.Event()
    engine.generate(
        harness.render_prompt(task), on_text=lambda s: None, cancel=nothing, max_tokens=1
    )
    turns = history_turns(engine, 0)
    print(f"turn adding ~{new_tokens} tokens (+16 generated):", flush=True)
    print(f"{'history':>8} {'append-only':>28} {'naive re-render':>30}", flush=True)
    for h in histories:
        grow = ""
        while engine.context_used + engine.count_tokens(grow) < h:
            text, msgs = next(turns)
            grow += text
            messages += msgs
        if grow:  # the model reads this history once, as it would have turn by turn
            engine.generate(grow, on_text=lambda s: None, cancel=nothing, max_tokens=1)
        obs = harness.format_observation(filler_observation(engine, new_tokens - 30), 0)
        append = harness.tool_response_turn(obs, model_closed_turn=False)
        g = engine.generate(append, on_text=lambda s: None, cancel=nothing, max_tokens=16)
        hist = g.context_used - g.tokens_evaluated - g.tokens_generated
        messages += [
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {"name": "bash", "arguments": {"command": "ls"}},
                    }
                ],
            },
            {"role": "tool", "content": obs},
        ]
        naive_tokens = engine.tokenize(render_template(messages))
        naive_llm.reset()
        t0 = time.perf_counter()
        for _tok in naive_llm.generate(naive_tokens, temp=0.7, top_p=0.95, top_k=0, min_p=0.0):
            break
        naive_ttft = time.perf_counter() - t0
        print(
            f"{hist:>8} {g.tokens_evaluated:>9} tok, TTFT {g.time_to_first_token_s:6.2f} s "
            f"{len(naive_tokens):>11} tok, TTFT {naive_ttft:7.2f} s",
            flush=True,
        )
        gc.collect()


def bench_memory(path: Path, threads: int) -> None:
    from tmax_local.agent import harness
    from tmax_local.agent.engine import EngineOptions, LlamaEngine

    before = rss_mb()
    eng = LlamaEngine(path, EngineOptions(ctx=65536, threads=threads, gpu_layers=0))
    loaded = rss_mb()
    eng.generate(
        harness.render_prompt("hello"),
        on_text=lambda s: None,
        cancel=threading.Event(),
        max_tokens=8,
    )
    used = rss_mb()
    print(
        f"resident memory, n_ctx 65536: {loaded - before:.0f} MB after load, "
        f"{used - before:.0f} MB after a first turn (process total {used:.0f} MB; "
        f"GGUF file {path.stat().st_size / 2**20:.0f} MB, memory-mapped)",
        flush=True,
    )
    eng.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--histories", default="1000,16000,32000")
    ap.add_argument("--new-tokens", type=int, default=500)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip", default="", help="comma list of: decode,turns,memory")
    args = ap.parse_args()
    from tmax_local.agent.engine import LlamaEngine, default_threads

    threads = args.threads or default_threads()
    path = build_gguf()
    skip = set(filter(None, args.skip.split(",")))
    histories = [int(x) for x in args.histories.split(",") if x]
    print(f"model {path} · {threads} threads · CPU", flush=True)
    if "memory" not in skip:
        bench_memory(path, threads)
    n_ctx = max(histories + [0]) + args.new_tokens + 2048
    if not {"decode", "turns"} <= skip:
        llm = load(path, n_ctx, threads)
        engine = LlamaEngine(path, llama=llm)
        if "decode" not in skip:
            bench_decode(engine, args.decode_tokens, args.rounds)
        if "turns" not in skip:
            bench_turns(engine, load(path, n_ctx, threads), histories, args.new_tokens)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
