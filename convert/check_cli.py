"""`tmax-local check`: how much quality a quantization costs, measured."""

from __future__ import annotations

import argparse
import sys

from tmax_local.convert.calibration import DEFAULT_CHUNK_SIZE
from tmax_local.convert.quality import DEFAULT_CHECK_CHUNKS

DESCRIPTION = """\
Compare a quantized model with a reference on the same text, teacher-forced: mean and 99th
percentile KL divergence of the next-token distributions, top-1 agreement, the perplexity of
each (as llama-perplexity --kl-divergence reports), plus file size and decode speed.

By default the text is the held-out fifth of tmax-2b's trajectories in the rollout format
(the model's replies and the observations it read), never used for `tmax-local imatrix`."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", metavar="MODEL.gguf", help="the model to check")
    parser.add_argument(
        "--reference",
        "-r",
        required=True,
        metavar="REF",
        help="reference .gguf, or the checkpoint directory / repo id MODEL came from (then a "
        "BF16/F16 conversion of it is made once in the models directory and used)",
    )
    parser.add_argument(
        "--text", nargs="+", metavar="FILE", help="evaluate these UTF-8 text files instead"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="N",
        help=f"tokens per chunk; the second half of each is scored (default {DEFAULT_CHUNK_SIZE})",
    )
    parser.add_argument(
        "--chunks",
        type=int,
        default=DEFAULT_CHECK_CHUNKS,
        metavar="N",
        help=f"evaluate at most N chunks (default {DEFAULT_CHECK_CHUNKS}; 0 = all of the text)",
    )
    parser.add_argument(
        "--decode-tokens",
        type=int,
        default=32,
        metavar="N",
        help="tokens to generate when timing decode speed (default 32; 0 skips it)",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: up to 4)")
    parser.add_argument("--revision", metavar="REV", help="revision when REF is a Hub repo")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from tmax_local.convert import calibration, gguf_source, quality

    progress = not args.no_progress and sys.stderr.isatty()
    if gguf_source.is_gguf(args.reference):
        ref = args.reference
    else:
        ref = gguf_source.reference_for(args.reference, revision=args.revision, progress=progress)
    docs = calibration.text_documents(args.text) if args.text else None
    res = quality.check(
        args.model,
        ref,
        docs=docs,
        chunk_size=args.chunk_size,
        max_chunks=args.chunks or None,
        threads=args.threads,
        decode_tokens=args.decode_tokens,
        progress=progress,
    )
    print_report(res)
    if args.json:
        quality.write_json(res, args.json)
    return 0


def print_report(res) -> None:
    def tok_s(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} tok/s"

    print(f"model      {res.model}")
    print(f"reference  {res.reference}")
    print(f"text       {res.tokens} scored tokens in {res.chunks} chunks of {res.chunk_size}")
    print(
        f"KL         mean {res.kl_mean:.5f}  median {res.kl_median:.5f}  "
        f"p99 {res.kl_p99:.4f}  max {res.kl_max:.4f}"
    )
    print(f"top-1      {100 * res.top1_agreement:.2f}% agreement")
    print(f"perplexity {res.ppl:.4f} (reference {res.ppl_reference:.4f})")
    print(
        f"size       {res.size_bytes / 1e6:.1f} MB "
        f"(reference {res.size_bytes_reference / 1e6:.1f} MB)"
    )
    print(f"decode     {tok_s(res.decode_tok_s)} (reference {tok_s(res.decode_tok_s_reference)})")
