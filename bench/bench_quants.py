"""The quantization table: size, decode speed and quality of each common type.

    python bench/bench_quants.py                          # full-size random 2B + learned tiny model
    python bench/bench_quants.py --source hamishivi/tmax-2b   # everything on real weights

Two models, reported separately and labelled:

* SOURCE (default: the full-size random Qwen3.5-2B checkpoint of bench/bench_convert.py,
  built once under bench/.cache/): every type converted with an importance matrix
  (``--imatrix`` computed once from the 16-bit file on the calibration trajectories), its
  file size and its decode speed (greedy, single-token steps, same run, same threads) next to
  the BF16 baseline. With real weights (``--source``) KL divergence and top-1 agreement
  against BF16 on the held-out trajectories are measured on it too. On random weights they
  mean nothing (flat distributions), so they are left out there.
* The tiny model with learned structure (tmax_local/testing/trained.py: hidden 256, trained
  briefly on the calibration trajectories): KL and top-1 vs its F32 file on the held-out
  trajectories, with and without an importance matrix.

Prints a Markdown table. ``--types`` picks the types; ``--chunks`` the imatrix chunks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

COMMON = [
    "Q8_0",
    "Q6_K",
    "Q5_K_M",
    "Q4_K_M",
    "IQ4_XS",
    "Q3_K_M",
    "IQ3_XXS",
    "Q2_K",
    "IQ2_M",
    "IQ2_XXS",
]


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def big_model_rows(source: str | None, types: list[str], chunks: int, threads: int, work: Path):
    from tmax_local.convert import api, imatrix, quality
    from tmax_local.convert.calibration import trajectory_documents
    from tmax_local.convert.llama_eval import Evaluator

    if source is None:
        from bench_convert import build_checkpoint  # type: ignore[import-not-found]

        source = str(build_checkpoint())
        real = False
    else:
        real = True
    ckpt, _, _ = api.prepare(source)
    base = "BF16" if ckpt.source_dtype == "BF16" else "F16"
    ref = api.convert_checkpoint(
        source, base, work / f"ref-{base}.gguf", overwrite=False, progress=True
    )
    im_path = work / "calib.imatrix.gguf"
    if not im_path.exists():
        t0 = time.perf_counter()
        im = imatrix.collect(
            ref,
            docs=trajectory_documents("calibration"),
            chunk_size=512,
            max_chunks=chunks,
            datasets=["tmax-2b trajectories (calibration split)"],
            threads=threads,
            progress=True,
        )
        imatrix.save(im, im_path)
        print(f"imatrix: {chunks} chunks in {time.perf_counter() - t0:.0f} s", flush=True)
    prompt = None
    rows = []
    with Evaluator(ref, n_ctx=256, n_batch=64, threads=threads) as ev:
        prompt = ev.tokenize(trajectory_documents("holdout")[0].text[:400], special=True)[:32]
        base_speed = quality.measure_decode(ev, prompt, 48)
    rows.append((base, ref.stat().st_size, base_speed, None))
    for t in types:
        out = work / f"m-{t}.gguf"
        if not out.exists():
            t0 = time.perf_counter()
            api.convert_checkpoint(
                source,
                t,
                out,
                imatrix=None if t in ("Q8_0",) else im_path,
                progress=False,
                nthread=threads,
            )
            print(f"{t}: converted in {time.perf_counter() - t0:.0f} s", flush=True)
        with Evaluator(out, n_ctx=256, n_batch=64, threads=threads) as ev:
            speed = quality.measure_decode(ev, prompt, 48)
        q = None
        if real:
            q = quality.check(out, ref, threads=threads, decode_tokens=0, progress=True)
        rows.append((t, out.stat().st_size, speed, q))
        print(
            f"{t}: {_mb(out.stat().st_size)}, {speed:.1f} tok/s (BF16 {base_speed:.1f})", flush=True
        )
    return rows, real


def tiny_rows(types: list[str], threads: int, work: Path):
    from tmax_local.convert import api, imatrix, quality
    from tmax_local.convert.calibration import trajectory_documents
    from tmax_local.testing.trained import trained_tiny_checkpoint

    ckpt = trained_tiny_checkpoint(log=True)
    ref = api.convert_checkpoint(
        ckpt, "F32", work / "tiny-F32.gguf", overwrite=False, progress=False
    )
    im_path = work / "tiny.imatrix.gguf"
    if not im_path.exists():
        imatrix.save(
            imatrix.collect(
                ref,
                docs=trajectory_documents("calibration"),
                chunk_size=128,
                max_chunks=64,
                threads=threads,
            ),
            im_path,
        )
    ones = work / "tiny-ones.imatrix.gguf"
    if not ones.exists():
        im = imatrix.load(im_path)
        for n in im.sums:
            im.sums[n] = im.counts[n][:, None] * (0 * im.sums[n] + 1.0)
        imatrix.save(im, ones)
    rows = {}
    for t in types:
        res = {}
        for label, imx in (("plain", None), ("imatrix", im_path)):
            from tmax_local.convert.quants import parse_quant

            q = parse_quant(t)
            use = imx
            if label == "plain" and q.needs_imatrix:
                use = ones  # llama.cpp refuses these without one: all columns weighted equally
            if q.direct:
                use = None
            out = work / f"tiny-{t}-{label}.gguf"
            if not out.exists():
                api.convert_checkpoint(ckpt, t, out, imatrix=use, progress=False, nthread=threads)
            res[label] = quality.check(
                out, ref, chunk_size=128, max_chunks=32, threads=threads, decode_tokens=0
            )
        rows[t] = res
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--source", help="checkpoint dir or repo id (default: random full-size 2B)")
    ap.add_argument("--types", nargs="+", default=COMMON)
    ap.add_argument("--chunks", type=int, default=8, help="imatrix chunks of 512 on SOURCE")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(ROOT / "bench" / ".cache" / "quants"))
    ap.add_argument("--skip-big", action="store_true", help="only the learned tiny model")
    ap.add_argument("--skip-tiny", action="store_true", help="only SOURCE (no KL columns)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tiny = {} if args.skip_tiny else tiny_rows(args.types, args.threads, work)
    big, real = (
        ([], False)
        if args.skip_big
        else big_model_rows(args.source, args.types, args.chunks, args.threads, work)
    )
    sizes = {t: (s, v) for t, s, v, _ in big}
    quals = {t: q for t, _, _, q in big}
    base_speed = big[0][2] if big else None
    print()
    what = "real weights" if real else "random weights, same shapes"
    print(
        f"| Type | 2B size | 2B decode tok/s (BF16 = {base_speed and f'{base_speed:.1f}'}) | "
        + ("2B KL / top-1 | " if real else "")
        + "tiny learned: KL plain → imatrix | tiny learned: top-1 plain → imatrix |"
    )
    print("|---|---|---|" + ("---|" if real else "") + "---|---|")
    for t in args.types:
        s, v = sizes.get(t, (None, None))
        line = f"| {t} | {_mb(s) if s else '-'} | {f'{v:.1f}' if v else '-'} | "
        if real:
            q = quals.get(t)
            line += f"{q.kl_mean:.4f} / {100 * q.top1_agreement:.1f}% | " if q else "- | "
        if t in tiny:
            p, i = tiny[t]["plain"], tiny[t]["imatrix"]
            line += f"{p.kl_mean:.4f} → {i.kl_mean:.4f} | "
            line += f"{100 * p.top1_agreement:.1f}% → {100 * i.top1_agreement:.1f}% |"
        else:
            line += "- | - |"
        print(line)
    print(
        f"\n2B columns: {what}, {args.threads} threads. Tiny columns: the learned tiny model "
        "(not the 2B), vs its F32 file on held-out trajectories."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
