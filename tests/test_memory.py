"""The memory estimate (`tmax_local.memory`) against llama.cpp's own figures, on a real tiny
converted model; the defaults chosen from it; the load progress callback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tmax_local import memory

KW = {"naming": "causal", "linear_k_heads": 2, "linear_v_heads": 4}


@pytest.fixture(scope="module")
def gguf(tiny_gguf) -> Path:
    return tiny_gguf("Q8_0", **KW)


def test_facts_come_from_the_gguf_header(gguf):
    import gguf as gguf_pkg

    f = memory.ModelFacts.from_gguf(gguf)
    assert f.architecture == "qwen35" and f.quant == "Q8_0"
    assert (f.n_layer, f.n_embd, f.full_attention_interval) == (4, 256, 4)
    assert f.n_attention_layers == 1
    assert f.n_vocab == 248_320 or f.n_vocab > 248_000
    reader = gguf_pkg.GGUFReader(str(gguf))
    assert f.weights_bytes == sum(int(t.n_bytes) for t in reader.tensors)
    assert f.weights_bytes < f.file_bytes == gguf.stat().st_size
    with pytest.raises(memory.ModelFileError, match="not a readable GGUF"):
        bad = gguf.parent / "bad.gguf"
        bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
        memory.ModelFacts.from_gguf(bad)


_PROBE = """
import sys
from llama_cpp import Llama
from tmax_local.agent.engine import CACHE_TYPES
kv = sys.argv[3]
Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=2, flash_attn=True,
      type_k=CACHE_TYPES[kv], type_v=CACHE_TYPES[kv], verbose=True)
"""


def _llama_log(gguf: Path, n_ctx: int, kv: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(gguf), str(n_ctx), kv],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return proc.stderr


@pytest.mark.parametrize("kv", ["f16", "q8_0"])
def test_kv_and_recurrent_sizes_equal_what_llama_cpp_allocates(gguf, kv):
    f = memory.ModelFacts.from_gguf(gguf)
    log = _llama_log(gguf, 8192, kv)
    kv_mib = float(re.search(r"CPU KV buffer size\s*=\s*([\d.]+) MiB", log).group(1))
    rs_mib = float(re.search(r"CPU RS buffer size\s*=\s*([\d.]+) MiB", log).group(1))
    assert memory.kv_bytes_per_token(f, kv, kv) * 8192 / 2**20 == pytest.approx(kv_mib, abs=0.01)
    assert memory.recurrent_bytes(f) / 2**20 == pytest.approx(rs_mib, abs=0.01)
    # and the compute buffer is within the estimate's term (an upper bound)
    compute_mib = float(re.search(r"CPU compute buffer size\s*=\s*([\d.]+) MiB", log).group(1))
    est = memory.estimate(f, 8192, kv, kv)
    assert compute_mib * 2**20 <= est.compute <= 2 * compute_mib * 2**20 + 8 * 2**20


def test_defaults_take_the_largest_context_that_fits(gguf):
    f = memory.ModelFacts.from_gguf(gguf)
    ample = memory.choose(f, 64 * 2**30)
    assert ample.fits and ample.warning is None and ample.type_k == "f16"
    assert ample.n_ctx == min(65536, f.context_length or 65536)
    # a machine where only a small context fits (use the 2B reference: KV matters there)
    from tmax_local.doctor import tmax_2b_reference

    ref = tmax_2b_reference()
    room_for_8k = memory.estimate(ref, 8192).total
    available = int(room_for_8k * 1.25)
    small = memory.choose(ref, available)
    assert small.fits and small.estimate.total <= memory.budget(available)
    # the first option in preference order (context first, f16 before q8_0) that fits
    order = [(c, kv) for c in memory.CONTEXT_STEPS for kv in ("f16", "q8_0")]
    pos = order.index((small.n_ctx, small.type_k))
    assert all(
        memory.estimate(ref, c, kv, kv).total > memory.budget(available) for c, kv in order[:pos]
    )
    assert small.n_ctx < 65536
    none = memory.choose(ref, 2**30)
    assert not none.fits and "needs about" in (none.warning or "") and "--ctx" in none.warning
    pinned = memory.choose(ref, 64 * 2**30, n_ctx=4096, type_k="q8_0", type_v="q8_0")
    assert (pinned.n_ctx, pinned.type_k) == (4096, "q8_0")


def test_recommendation_prefers_64k_then_quality():
    from tmax_local.doctor import tmax_2b_reference

    ref = tmax_2b_reference()
    big = memory.recommend(ref, 32 * 2**30)
    assert big is not None and (big.quant, big.n_ctx, big.kv) == ("Q8_0", 65536, "f16")
    tight = memory.recommend(ref, 3 * 2**30)
    assert tight is not None and tight.total_bytes <= memory.budget(3 * 2**30)
    assert memory.recommend(ref, 2**29) is None


def test_model_load_reports_a_percentage(gguf):
    from tmax_local.agent.engine import EngineOptions, LlamaEngine

    seen: list[float] = []
    eng = LlamaEngine(gguf, EngineOptions(ctx=512, threads=2), on_load_progress=seen.append)
    try:
        assert seen and seen[-1] == pytest.approx(1.0)
        assert seen == sorted(seen) and len(set(seen)) > 2
    finally:
        eng.close()
    # the patch is gone afterwards: another load does not call the old callback
    n = len(seen)
    LlamaEngine(gguf, EngineOptions(ctx=512, threads=2)).close()
    assert len(seen) == n
