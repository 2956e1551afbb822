"""The llama.cpp backend on a real tiny Qwen 3.5 model converted by our converter:
append-only token stream, per-turn evaluation counts, state equal to a fresh evaluation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from engine_support import CALL_GRAMMAR, run_agent

from tmax_local.agent import harness
from tmax_local.agent.engine import EngineOptions, LlamaEngine
from tmax_local.agent.parser import parse_reply


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    pytest.importorskip("transformers")
    from tmax_local.convert import convert_checkpoint
    from tmax_local.testing.checkpoints import make_tiny_checkpoint

    d = tmp_path_factory.mktemp("tiny")
    ckpt = make_tiny_checkpoint(d / "ckpt")
    return convert_checkpoint(str(ckpt), quant="F32", output=d / "tiny-F32.gguf", progress=False)


def _engine(path, **kw) -> LlamaEngine:
    opts = {"ctx": 4096, "threads": 2, "seed": 7, "cache_type_k": "f32", "cache_type_v": "f32"}
    opts.update(kw)
    return LlamaEngine(path, EngineOptions(**opts))


def _last_logits(eng: LlamaEngine) -> np.ndarray:
    """Logits llama.cpp computed for the last evaluated token."""
    n_vocab = eng.llm.n_vocab()
    return np.ctypeslib.as_array(eng.llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float64)


def test_append_only_stream_counts_and_state(tiny_gguf):
    eng = _engine(tiny_gguf, grammar=CALL_GRAMMAR)
    cancel = threading.Event()
    prompt = harness.render_prompt("Print a word.")
    pieces: list[str] = []
    g1 = eng.generate(prompt, on_text=pieces.append, cancel=cancel, max_tokens=120)
    # First turn evaluates the whole prompt, exactly its tokens.
    assert g1.tokens_evaluated == eng.count_tokens(prompt)
    assert g1.finish == "stop" and "".join(pieces) == g1.text
    assert parse_reply(g1.text).command.startswith("echo ")
    # The stream is prompt ids + the sampled ids, the last being <|im_end|>, not yet evaluated.
    assert eng.stream[: g1.tokens_evaluated] == eng.tokenize(prompt)
    assert eng.stream[-1] == eng.tokenize(harness.IM_END)[0]
    assert eng.evaluated == len(eng.stream) - 1
    sampled_1 = list(eng.stream[g1.tokens_evaluated :])
    assert len(sampled_1) == g1.tokens_generated

    for step in range(1):
        before = len(eng.stream)
        append = harness.tool_response_turn(f"word{step}\n\n(exit_code=0)")
        g = eng.generate(append, on_text=lambda s: None, cancel=cancel, max_tokens=120)
        # Only the appended tokens plus the previous reply's final token are evaluated.
        assert g.tokens_evaluated == eng.count_tokens(append) + 1
        assert g.tokens_evaluated < 60 < before
        # History untouched: the model's own sampled ids are still there, verbatim.
        assert eng.stream[g1.tokens_evaluated : g1.tokens_evaluated + len(sampled_1)] == sampled_1
        assert eng.stream[before : before + eng.count_tokens(append)] == eng.tokenize(append)
        assert g.context_used == len(eng.stream) == eng.context_used
        assert parse_reply(g.text).command is not None
    assert [t["evaluated"] for t in eng.turn_log][1:] == [
        eng.count_tokens(harness.tool_response_turn(f"word{s}\n\n(exit_code=0)")) + 1
        for s in range(1)
    ]

    # The state reached append-only equals a fresh evaluation of the same ids.
    live = _last_logits(eng)
    fresh = _engine(tiny_gguf)
    fresh.llm.eval(eng.stream[:-1])
    ref = _last_logits(fresh)
    assert np.max(np.abs(live - ref)) <= 1e-3 * max(1.0, np.max(np.abs(ref)))
    fresh.close()
    eng.close()


def test_max_tokens_and_cancel(tiny_gguf):
    eng = _engine(tiny_gguf)
    g = eng.generate(
        harness.render_prompt("x"), on_text=lambda s: None, cancel=threading.Event(), max_tokens=5
    )
    assert g.tokens_generated <= 5
    if g.finish == "length":
        assert g.tokens_generated == 5
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(s):
        seen.append(s)
        cancel.set()

    g2 = eng.generate(
        harness.tool_response_turn("ok\n\n(exit_code=0)", model_closed_turn=g.finish == "stop"),
        on_text=on_text,
        cancel=cancel,
        max_tokens=50,
    )
    assert g2.finish in ("cancelled", "stop")
    if g2.finish == "cancelled":
        assert g2.tokens_generated <= 3
    eng.close()


def test_end_to_end_real_model_real_loop(tiny_gguf, tmp_path):
    """Real llama.cpp (grammar-constrained), real loop, real PtyShell, real approval policy."""
    from tmax_local.agent import events as ev
    from tmax_local.agent.transcript import load_records, stream_text

    eng = _engine(tiny_gguf, grammar=CALL_GRAMMAR)
    seen: list = []
    done = run_agent(eng, tmp_path, "Say a word.", seen.append, max_steps=2)
    assert done.reason == "step_limit" and done.steps == 2
    ran = [e for e in seen if isinstance(e, ev.CommandExecuted)]
    assert len(ran) == 2
    for e in ran:
        word = e.command.split(" ", 1)[1]
        assert e.observation == f"{word}\n\n(exit_code=0)"
    stats = [e for e in seen if isinstance(e, ev.TurnStats)]
    assert stats[0].tokens_evaluated == eng.count_tokens(harness.render_prompt("Say a word."))
    # Turn 2 evaluated only the observation turn (+ the reply's final token).
    assert (
        stats[1].tokens_evaluated
        == eng.count_tokens(harness.tool_response_turn(ran[0].observation)) + 1
    )
    assert stats[1].context_used == len(eng.stream) and stats[1].context_limit == 4096
    # The transcript rebuilds the exact stream text the model saw (re-tokenizing it would NOT
    # give the sampled ids back: a random model picks non-canonical splits, hence the
    # append-only id stream).
    text, pending = stream_text(load_records(tmp_path / "t.jsonl"))
    assert eng.llm.detokenize(eng.stream, special=True).decode("utf-8") == text
    assert pending == harness.tool_response_turn(ran[1].observation)
    eng.close()
