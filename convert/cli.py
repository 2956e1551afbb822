"""`tmax-local convert`: the command-line face of the converter."""

from __future__ import annotations

import argparse
import sys

from tmax_local.convert.quants import DEFAULT_QUANT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="checkpoint directory or Hugging Face repo id (e.g. hamishivi/tmax-2b)",
    )
    parser.add_argument(
        "--quant",
        "-q",
        default=DEFAULT_QUANT,
        metavar="TYPE",
        help=f"output type (default {DEFAULT_QUANT}; see --list-quants)",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="output .gguf path (default: models/<model>-<TYPE>.gguf)",
    )
    parser.add_argument(
        "--revision", metavar="REV", help="branch, tag or commit of a Hub repo (e.g. step-0200)"
    )
    parser.add_argument(
        "--tensor-type",
        action="append",
        default=[],
        metavar="PATTERN=TYPE",
        dest="tensor_types",
        help="override the type of tensors whose name matches the regex PATTERN "
        "(e.g. 'ffn_down=Q6_K'); repeatable, first match wins",
    )
    parser.add_argument(
        "--list-quants",
        action="store_true",
        help="list the output types with their approximate size for SOURCE and exit",
    )
    parser.add_argument(
        "--imatrix",
        metavar="FILE|auto",
        help="importance matrix for the llama.cpp-quantized types (needed by IQ1/IQ2/IQ3_XXS/"
        "IQ3_XS/Q2_K_S): a file from `tmax-local imatrix` or llama-imatrix, or 'auto' to compute "
        "one from tmax-2b's trajectories (cached next to the output)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="after writing, measure the output against a BF16/F16 conversion of SOURCE and "
        "print one line (size, KL divergence, top-1 agreement); see `tmax-local check`",
    )
    parser.add_argument(
        "--imatrix-chunks",
        type=int,
        metavar="N",
        help="chunks of 512 tokens --imatrix auto evaluates (default 64)",
    )
    parser.add_argument(
        "--check-chunks",
        type=int,
        default=16,
        metavar="N",
        help="chunks of 512 tokens --check evaluates (default 16)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from tmax_local.convert import api

    progress = not args.no_progress and sys.stderr.isatty()
    if args.list_quants:
        rows = api.list_quants(args.source, revision=args.revision, progress=progress)
        print(f"{'TYPE':<8} {'SIZE':>10}  NOTE")
        for q, size in rows:
            how = "" if q.direct else "(llama.cpp quantizer) "
            if q.needs_imatrix:
                how += "[needs --imatrix] "
            shown = f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
            print(f"{q.name:<8} {shown:>10}  {how}{q.note}".rstrip())
        return 0
    out = api.convert_checkpoint(
        args.source,
        args.quant,
        args.output,
        revision=args.revision,
        tensor_types=args.tensor_types,
        progress=progress,
        imatrix=args.imatrix,
        imatrix_chunks=args.imatrix_chunks,
    )
    print(f"wrote {out}")
    if args.check:
        from tmax_local.convert import gguf_source, quality

        ref = gguf_source.reference_for(args.source, revision=args.revision, progress=progress)
        if ref.resolve() == out.resolve():
            print("check: the output is the 16-bit reference itself")
            return 0
        res = quality.check(out, ref, max_chunks=args.check_chunks, progress=progress)
        print("check: " + res.one_line())
    return 0
