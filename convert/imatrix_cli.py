"""`tmax-local imatrix`: compute an importance matrix for low-bit quantization."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tmax_local.convert.calibration import DEFAULT_CHUNK_SIZE
from tmax_local.convert.imatrix import DEFAULT_CHUNKS

DESCRIPTION = """\
Compute an importance matrix: run a model over calibration text and record, for every weight
matrix, how large its inputs are per column (the sum of squared activations and the row
count, as llama.cpp's llama-imatrix does). Low-bit types (IQ1/IQ2/IQ3_XXS/IQ3_XS/Q2_K_S)
need one; every llama.cpp-quantized type is better with one. Pass the file to
`tmax-local convert --imatrix FILE`. The file is llama.cpp's GGUF imatrix format.

By default the text is tmax-2b's own agent trajectories in the exact rollout format the model
reads (a held-out fifth is kept for `tmax-local check`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="a .gguf model, or a checkpoint directory / Hugging Face repo id (converted first, "
        "see --from)",
    )
    parser.add_argument(
        "--output", "-o", required=True, metavar="FILE", help="importance matrix file to write"
    )
    parser.add_argument(
        "--from",
        dest="from_type",
        choices=["BF16", "F16", "Q8_0", "F32"],
        type=str.upper,
        help="type to convert a checkpoint SOURCE to before measuring (default: BF16 for bf16 "
        "weights, else F16); ignored for a .gguf SOURCE",
    )
    parser.add_argument(
        "--text",
        nargs="+",
        metavar="FILE",
        help="calibrate on these UTF-8 text files (tokenized as is) instead of the trajectories",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="N",
        help=f"tokens per chunk, each evaluated from a fresh state (default {DEFAULT_CHUNK_SIZE})",
    )
    parser.add_argument(
        "--chunks",
        type=int,
        default=DEFAULT_CHUNKS,
        metavar="N",
        help=f"evaluate at most N chunks (default {DEFAULT_CHUNKS}; 0 = all of the text)",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: up to 4)")
    parser.add_argument("--revision", metavar="REV", help="branch, tag or commit of a Hub repo")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from tmax_local.convert import calibration, gguf_source
    from tmax_local.convert import imatrix as imx

    progress = not args.no_progress and sys.stderr.isatty()
    out = Path(args.output).expanduser()
    if args.text:
        docs = calibration.text_documents(args.text)
        datasets = [str(Path(t).expanduser()) for t in args.text]
    else:
        docs = calibration.trajectory_documents("calibration")
        datasets = ["tmax-2b trajectories (calibration split, rollout format)"]
    with gguf_source.as_gguf(
        args.source,
        args.from_type,
        work_dir=out.parent,
        revision=args.revision,
        progress=progress,
        threads=args.threads,
    ) as model:
        im = imx.collect(
            model,
            docs=docs,
            chunk_size=args.chunk_size,
            max_chunks=args.chunks or None,
            datasets=datasets,
            threads=args.threads,
            progress=progress,
        )
    imx.save(im, out)
    tokens = im.chunk_count * im.chunk_size
    print(f"wrote {out} ({len(im.sums)} tensors, {im.chunk_count} chunks, {tokens} tokens)")
    return 0
