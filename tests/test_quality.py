"""`check` and the proof that the importance matrix helps: on a tiny model with learned
structure (trained briefly on the calibration trajectories), quantizing with the imatrix
gives a lower KL divergence than without, for Q3_K_S, IQ3_XXS and IQ2_XXS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tmax_local.convert import calibration, quality
from tmax_local.convert import imatrix as imx

CHUNK = 128
pytestmark = pytest.mark.timeout(3600)  # trains/converts on a shared 2-core machine


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint, F32 gguf, imatrix path, all-ones imatrix path, work dir)."""
    from tmax_local.convert import convert_checkpoint
    from tmax_local.testing.trained import trained_tiny_checkpoint

    ckpt = trained_tiny_checkpoint()
    meta = json.loads((ckpt / "training.json").read_text())
    assert meta["loss_last10"] < meta["loss_first"] - 3.0, meta  # it did learn
    work = tmp_path_factory.mktemp("trained")
    ref = convert_checkpoint(ckpt, "F32", work / "ref-F32.gguf", progress=False)
    im = imx.collect(
        ref,
        docs=calibration.trajectory_documents("calibration"),
        chunk_size=CHUNK,
        max_chunks=24,
        threads=2,
    )
    im_path = imx.save(im, work / "calib.imatrix.gguf")
    for n in im.sums:  # every column equally important: the "plain" baseline for IQ types
        im.sums[n] = np.ones_like(im.sums[n]) * im.counts[n][:, None]
    ones = imx.save(im, work / "ones.imatrix.gguf")
    return ckpt, ref, im_path, ones, work


def _kl(work, ckpt, ref, quant, imatrix, label):
    from tmax_local.convert import convert_checkpoint

    out = convert_checkpoint(
        ckpt, quant, work / f"{quant}-{label}.gguf", imatrix=imatrix, progress=False, nthread=2
    )
    return quality.check(out, ref, chunk_size=CHUNK, max_chunks=12, threads=2, decode_tokens=0)


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["Q3_K_S", "IQ3_XXS", "IQ2_XXS"])
def test_imatrix_lowers_kl_on_a_model_with_learned_structure(trained, quant):
    ckpt, ref, im_path, ones, work = trained
    # Q3_K_S has a true plain mode; llama.cpp refuses IQ types without a matrix, so their
    # baseline weights every column equally (same type mix, no importance information).
    plain = _kl(work, ckpt, ref, quant, None if quant == "Q3_K_S" else ones, "plain")
    with_im = _kl(work, ckpt, ref, quant, im_path, "imatrix")
    print(
        f"{quant}: KL {plain.kl_mean:.4f} -> {with_im.kl_mean:.4f}, "
        f"top-1 {plain.top1_agreement:.3f} -> {with_im.top1_agreement:.3f}"
    )
    assert with_im.tokens == plain.tokens == 12 * (CHUNK // 2 - 1)
    assert with_im.kl_mean < plain.kl_mean


def test_reference_against_itself_is_exact(trained):
    _, ref, _, _, _ = trained
    r = quality.check(ref, ref, chunk_size=CHUNK, max_chunks=2, threads=2, decode_tokens=4)
    assert r.kl_mean == 0.0 and r.kl_p99 == 0.0 and r.top1_agreement == 1.0
    assert r.ppl == r.ppl_reference and r.tokens == 2 * (CHUNK // 2 - 1)
    assert r.decode_tok_s and r.decode_tok_s > 0


def test_perplexity_matches_transformers(trained):
    """Teacher forcing is right: the F32 file's perplexity over the scored half of each chunk
    equals transformers' cross-entropy of the same checkpoint on the same positions."""
    import torch

    from tmax_local.convert.llama_eval import Evaluator
    from tmax_local.testing.checkpoints import load_reference_model

    ckpt, ref, _, _, _ = trained
    docs = calibration.trajectory_documents("holdout")
    with Evaluator(ref, n_ctx=CHUNK) as ev:
        chunks = calibration.make_chunks(docs, lambda t, sp: ev.tokenize(t, special=sp), CHUNK, 2)
    r = quality.check(
        ref, ref, docs=docs, chunk_size=CHUNK, max_chunks=2, kv_f32=True, decode_tokens=0
    )
    model = load_reference_model(ckpt)
    nll, n = 0.0, 0
    with torch.no_grad():
        for c in chunks:
            logits = model(torch.tensor([c])).logits[0].double()
            lp = torch.log_softmax(logits, -1)
            for i in range(CHUNK // 2, CHUNK - 1):
                nll -= float(lp[i, c[i + 1]])
                n += 1
    assert n == r.tokens
    assert r.ppl == pytest.approx(np.exp(nll / n), rel=1e-4)


def test_score_positions_against_torch():
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 300)).astype(np.float32) * 3
    b = a + rng.standard_normal((5, 300)).astype(np.float32)
    nxt = rng.integers(0, 300, 5)
    kl, agree, nl, nr = quality.score_positions(a, b, nxt)
    ta, tb = (
        torch.log_softmax(torch.tensor(a, dtype=torch.float64), -1),
        torch.log_softmax(torch.tensor(b, dtype=torch.float64), -1),
    )
    want = torch.nn.functional.kl_div(tb, ta, log_target=True, reduction="none").sum(-1)
    np.testing.assert_allclose(kl, want.numpy(), rtol=1e-9)
    np.testing.assert_allclose(nl, -tb[np.arange(5), nxt].numpy(), rtol=1e-9)
    np.testing.assert_allclose(nr, -ta[np.arange(5), nxt].numpy(), rtol=1e-9)
    assert agree.tolist() == (a.argmax(-1) == b.argmax(-1)).tolist()
