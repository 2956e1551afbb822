"""The importance matrix: the statistic collected through llama.cpp's eval callback equals the
mean squared input of every nn.Linear in transformers; the GGUF file round-trips and reads
like llama.cpp's; every low-bit type converts with it, loads and generates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tmax_local.convert import calibration
from tmax_local.convert import imatrix as imx

CHUNK = 64
pytestmark = pytest.mark.timeout(1800)  # conversions on a shared 2-core machine


def _chunks(gguf_path: Path, n: int = 3) -> list[list[int]]:
    from tmax_local.convert.llama_eval import Evaluator

    docs = calibration.trajectory_documents("calibration")[:n]
    with Evaluator(gguf_path, n_ctx=CHUNK) as ev:
        return calibration.make_chunks(docs, lambda t, sp: ev.tokenize(t, special=sp), CHUNK, n)


def _hf_mean_squares(ckpt: Path, chunks: list[list[int]]) -> dict[str, np.ndarray]:
    """Mean of squared inputs per column of every nn.Linear in the blocks (forward hooks),
    each chunk a fresh forward pass, keyed by GGUF weight name (with the converter's column
    permutation applied where it permutes input columns)."""
    import torch

    from tmax_local.convert.checkpoint import open_checkpoint
    from tmax_local.convert.qwen35 import _reorder_v, gguf_name, read_hparams
    from tmax_local.testing.checkpoints import load_reference_model

    model = load_reference_model(ckpt)
    hp = read_hparams(open_checkpoint(ckpt).text)
    sums: dict[str, np.ndarray] = {}
    rows: dict[str, int] = {}
    hooks = []
    for mname, mod in model.model.named_modules():
        if isinstance(mod, torch.nn.Linear) and mname.startswith("layers."):

            def hook(m, inputs, output, key=mname):
                x = inputs[0].detach().double().reshape(-1, inputs[0].shape[-1])
                sums[key] = sums.get(key, 0) + (x * x).sum(0).numpy()
                rows[key] = rows.get(key, 0) + x.shape[0]

            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        for c in chunks:
            model(torch.tensor([c]))
    for h in hooks:
        h.remove()
    out = {}
    for key, s in sums.items():
        ms = s / rows[key]
        if key.endswith("linear_attn.out_proj") and hp.needs_v_reorder:
            nk, per_k = hp.lin_k_heads, hp.lin_v_heads // hp.lin_k_heads
            ms = _reorder_v(ms[None, :], 1, nk, per_k, hp.lin_v_dim)[0]
        out[gguf_name(key + ".weight")] = ms
    return out


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"linear_k_heads": 2, "linear_v_heads": 4}, id="k_ne_v"),
        pytest.param({"linear_k_heads": 2, "linear_v_heads": 2}, id="k_eq_v"),
    ],
)
def test_statistic_equals_transformers_hooks(tiny_checkpoint, tiny_gguf, kw):
    ckpt = tiny_checkpoint(**kw)
    gguf_path = tiny_gguf("F32", **kw)
    chunks = _chunks(gguf_path)
    im = imx.collect(gguf_path, chunks, chunk_size=CHUNK, kv_f32=True, threads=2)
    want = _hf_mean_squares(ckpt, chunks)
    # Every projection of every block: 4 layers, 3 linear-attention (5 each: qkv, gate,
    # alpha, beta, out) + 1 full-attention (q, k, v, output), + 3 FFN each.
    assert set(im.names()) == set(want)
    assert len(want) == 3 * 5 + 4 + 4 * 3
    for name in im.names():
        assert im.counts[name].tolist() == [len(chunks) * CHUNK], name
        got = im.mean_sq(name)[0]
        np.testing.assert_allclose(got, want[name], rtol=2e-4, atol=1e-7, err_msg=name)
    if kw["linear_v_heads"] != kw["linear_k_heads"]:
        # The permutation matters: without it, out_proj would not match.
        from tmax_local.convert.qwen35 import gguf_name

        tiled = want[gguf_name("layers.0.linear_attn.out_proj.weight")]
        nk, per_k, vd = 2, 2, 64
        grouped = tiled.reshape(per_k, nk, vd).swapaxes(0, 1).reshape(-1)  # undo tiled order
        assert not np.allclose(im.mean_sq("blk.0.ssm_out.weight")[0], grouped, rtol=1e-2)


def test_file_round_trip_and_llama_cpp_layout(tiny_gguf, tmp_path):
    import gguf

    g = tiny_gguf("F32", linear_k_heads=2, linear_v_heads=4)
    im = imx.collect(g, _chunks(g, 2), chunk_size=CHUNK, datasets=["unit"], threads=2)
    path = imx.save(im, tmp_path / "x.imatrix.gguf")
    assert [p.name for p in tmp_path.iterdir()] == ["x.imatrix.gguf"]  # no temp left behind
    r = gguf.GGUFReader(str(path))
    assert r.get_field("general.type").contents() == "imatrix"
    assert r.get_field("imatrix.datasets").contents() == ["unit"]
    assert r.get_field("imatrix.chunk_count").contents() == 2
    assert r.get_field("imatrix.chunk_size").contents() == CHUNK
    assert "general.architecture" not in r.fields
    t = {x.name: x for x in r.tensors}
    s = t["blk.0.ffn_down.weight.in_sum2"]
    c = t["blk.0.ffn_down.weight.counts"]
    # ggml order: in_sum2 [n_per_row, n_mat], counts [1, n_mat]
    assert list(s.shape) == [512, 1] and list(c.shape) == [1, 1]
    assert s.tensor_type == gguf.GGMLQuantizationType.F32
    back = imx.load(path)
    assert back.names() == im.names()
    for n in im.names():
        np.testing.assert_allclose(back.mean_sq(n), im.mean_sq(n), rtol=1e-6)
        assert back.counts[n].tolist() == im.counts[n].tolist()


# -- llama.cpp accepts the file: every listed type converts with it, loads and generates ----


@pytest.fixture(scope="module")
def tiny_imatrix(tiny_gguf, tmp_path_factory) -> Path:
    g = tiny_gguf("F32", linear_k_heads=2, linear_v_heads=4)
    im = imx.collect(g, _chunks(g, 4), chunk_size=CHUNK, datasets=["unit"], threads=2)
    return imx.save(im, tmp_path_factory.mktemp("im") / "tiny.imatrix.gguf")


def _all_types() -> list[str]:
    from tmax_local.convert.quants import QUANT_TYPES

    return list(QUANT_TYPES)


@pytest.mark.slow
@pytest.mark.parametrize("quant", _all_types())
def test_every_type_converts_with_the_imatrix_loads_and_generates(
    quant, tiny_checkpoint, tiny_imatrix, tmp_path
):
    from llama_cpp import Llama

    from tmax_local.convert import convert_checkpoint

    src = tiny_checkpoint(linear_k_heads=2, linear_v_heads=4)
    out = convert_checkpoint(
        src, quant, tmp_path / f"t-{quant}.gguf", imatrix=tiny_imatrix, progress=False, nthread=2
    )
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    llm = Llama(str(out), n_ctx=128, n_threads=2, verbose=False)
    try:
        res = llm.create_completion(
            "<|im_start|>user\nhi<|im_end|>\n", max_tokens=6, temperature=0.0
        )
        assert res["usage"]["completion_tokens"] >= 1
        tokens = llm.tokenize(b"ls -la /app", add_bos=False)
        llm.eval(tokens)
        assert np.isfinite(llm.scores[: len(tokens)]).all()
    finally:
        llm.close()


def test_low_bit_type_without_imatrix_is_refused_before_writing(tiny_checkpoint, tmp_path):
    from tmax_local.convert import convert_checkpoint
    from tmax_local.errors import ConversionError

    src = tiny_checkpoint(linear_k_heads=2, linear_v_heads=4)
    with pytest.raises(ConversionError, match="IQ2_XXS needs an importance matrix"):
        convert_checkpoint(src, "IQ2_XXS", tmp_path / "x.gguf", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_calibration_text_is_the_rollout_and_holds_out_a_fifth():
    from tmax_local.agent import harness

    cal = calibration.trajectory_documents("calibration")
    held = calibration.trajectory_documents("holdout")
    assert len(cal) == 36 and len(held) == 9
    assert not {d.name for d in cal} & {d.name for d in held}
    t = held[0].text
    assert t.startswith(harness.render_system_turn().split("\n\n", 1)[0])
    # replies end with the model's <|im_end|>, observations use the RL framing
    assert "</tool_call><|im_end|><|im_start|>user\n<tool_response>\n" in t
    assert t.count(harness.GENERATION_PROMPT) == t.count("<|im_start|>assistant\n")
    assert not t.endswith(harness.GENERATION_PROMPT)


def test_chunks_are_non_overlapping_and_round_robin():
    docs = [calibration.Document(n, n * 100, special=False) for n in ("a", "b")]
    chunks = calibration.make_chunks(docs, lambda text, sp: [ord(c) for c in text], 16)
    # 100 tokens each -> 6 full chunks per document, alternating a, b, a, b, ...
    assert [chr(c[0]) for c in chunks] == list("ab" * 6)
    assert all(len(c) == 16 for c in chunks)
    assert len(calibration.make_chunks(docs, lambda t, s: [ord(c) for c in t], 16, 3)) == 3
    with pytest.raises(calibration.CalibrationError, match="shorter than one chunk"):
        calibration.make_chunks(docs, lambda t, s: [1, 2], 16)


def test_limited_chunks_equal_a_full_tokenization(tiny_gguf):
    """The prefix shortcut under a chunk limit yields exactly the chunks of the full text."""
    from tmax_local.convert.llama_eval import Evaluator

    docs = calibration.trajectory_documents("holdout")
    with Evaluator(tiny_gguf("F32", linear_k_heads=2, linear_v_heads=4), n_ctx=CHUNK) as ev:

        def tok(t, sp):
            return ev.tokenize(t, special=sp)

        full = calibration.make_chunks(docs, tok, CHUNK)
        limited = calibration.make_chunks(docs, tok, CHUNK, 20)
    assert limited == full[:20]
