"""The converter's Python API: checkpoint (dir or repo id) → GGUF, atomically."""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tmax_local.convert.checkpoint import Checkpoint, open_checkpoint
from tmax_local.convert.quants import (
    DEFAULT_QUANT,
    DEFAULT_RECIPE,
    DIRECT_TYPES,
    QUANT_TYPES,
    QuantType,
    match_override,
    parse_quant,
    parse_tensor_types,
    run_llama_quantize,
)
from tmax_local.convert.qwen35 import HParams, PlannedTensor, plan_tensors, read_hparams
from tmax_local.convert.source import resolve_source
from tmax_local.convert.vocab import load_vocab
from tmax_local.convert.writer import nbytes_for, write_gguf
from tmax_local.errors import ConversionError, Interrupted


def default_output(model_name: str, quant: str, revision: str | None = None) -> Path:
    """``models/<model>-<QUANT>.gguf``, or ``models/<model>-<revision>-<QUANT>.gguf`` for a
    named revision (so a checkpoint of a branch/tag never overwrites or stands in for
    another revision's conversion)."""
    from tmax_local.paths import models_dir

    if revision:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", revision).strip("._") or "rev"
        return models_dir() / f"{model_name}-{safe}-{quant}.gguf"
    return models_dir() / f"{model_name}-{quant}.gguf"


def _model_name(source: str | Path, ckpt: Checkpoint) -> str:
    text = str(source)
    if not Path(text).expanduser().is_dir() and "/" in text:
        return text.rstrip("/").split("/")[-1]
    # HF snapshot dirs are named by commit hash; prefer the config's name when present
    return ckpt.path.resolve().name


def _fits_q8_0(t: PlannedTensor) -> bool:
    return t.shape[-1] % 32 == 0


def _direct_type(t: PlannedTensor, quant: str, overrides: list[tuple[str, str]]) -> str:
    if t.keep_f32:
        return "F32"
    forced = match_override(t.name, overrides)
    tname = forced or quant
    if tname not in DIRECT_TYPES:
        raise ConversionError(
            f"--tensor-type {tname} for {t.name} needs llama.cpp's quantizer; with --quant {quant} "
            f"only {', '.join(DIRECT_TYPES)} can be chosen per tensor"
        )
    if tname == "Q8_0" and not _fits_q8_0(t):
        return "F16"
    return tname


def _intermediate_type(t: PlannedTensor, base: str, user: list[tuple[str, str]]) -> str:
    """Type of a tensor in the 16-bit file handed to llama.cpp's quantizer."""
    if t.keep_f32:
        return "F32"
    if t.name in ("token_embd.weight", "output.weight") and _fits_q8_0(t):
        forced = match_override(t.name, user)
        if forced is None or forced == "Q8_0":
            return "Q8_0"  # final type already; the quantizer copies it as is
    return base


def estimate_size(plan: list[PlannedTensor], quant: QuantType) -> int:
    """Approximate output size in bytes for ``quant`` (llama.cpp's nominal bits per weight)."""
    total = 0
    for t in plan:
        n = math.prod(t.shape)
        if t.keep_f32:
            total += 4 * n
        elif not quant.direct and t.name in ("token_embd.weight", "output.weight"):
            total += n * 34 // 32  # Q8_0 by the default recipe
        else:
            total += int(n * quant.bpw / 8)
    return total


@contextmanager
def _temp_path(directory: Path, stem: str, suffix: str) -> Iterator[Path]:
    """A fresh temp file name in ``directory``; removed on exit unless renamed away."""
    fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=suffix, dir=directory)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _os_error(err: OSError, where: Path) -> ConversionError:
    if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return ConversionError(f"not enough space to write {where} ({os.strerror(err.errno)})")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConversionError(f"cannot write to {where}: {os.strerror(err.errno)}")
    return ConversionError(f"writing {where} failed: {err.strerror or err}")


def prepare(
    source: str | Path, *, revision: str | None = None, progress: bool = True
) -> tuple[Checkpoint, HParams, list[PlannedTensor]]:
    """Resolve, open and validate a checkpoint without writing anything."""
    local = resolve_source(source, revision=revision, progress=progress)
    ckpt = open_checkpoint(local)
    hp = read_hparams(ckpt.text)
    plan = plan_tensors(ckpt, hp)
    return ckpt, hp, plan


def list_quants(
    source: str | Path, *, revision: str | None = None, progress: bool = True
) -> list[tuple[QuantType, int]]:
    """Every supported type with its approximate output size for this checkpoint."""
    _, _, plan = prepare(source, revision=revision, progress=progress)
    return [(q, estimate_size(plan, q)) for q in QUANT_TYPES.values()]


def convert_checkpoint(
    source: str | Path,
    quant: str = DEFAULT_QUANT,
    output: str | Path | None = None,
    *,
    revision: str | None = None,
    tensor_types: list[str] | None = None,
    progress: bool = True,
    overwrite: bool = True,
    nthread: int | None = None,
    imatrix: str | Path | None = None,
    imatrix_chunks: int | None = None,
) -> Path:
    """Convert ``source`` to a GGUF of type ``quant`` and return its path.

    ``source`` is a checkpoint directory or a Hugging Face repo id (downloaded once into
    the HF cache; ``revision`` picks a branch/tag/commit). ``output`` defaults to
    ``models/<model>-<QUANT>.gguf``. ``tensor_types`` are ``PATTERN=TYPE`` overrides.
    With ``overwrite=False`` an existing output is returned untouched (convert once,
    reuse). The output appears only when complete: any failure, and Ctrl-C, leave no
    file behind. Raises ``ConversionError`` (or ``Interrupted``) with a one-line message.

    ``imatrix`` is an importance-matrix file (llama.cpp's GGUF format) or ``"auto"``: computed
    on tmax-2b's calibration trajectories from the 16-bit intermediate file (at most
    ``imatrix_chunks`` chunks) and cached next to the output, keyed on source and text. The
    directly written types (F32/F16/BF16/Q8_0) do not use it.
    """
    return _convert(
        source,
        quant,
        output,
        revision=revision,
        tensor_types=tensor_types,
        progress=progress,
        overwrite=overwrite,
        nthread=nthread,
        imatrix=imatrix,
        imatrix_chunks=imatrix_chunks,
    )


def _convert(
    source: str | Path,
    quant: str,
    output: str | Path | None,
    *,
    revision: str | None = None,
    tensor_types: list[str] | None = None,
    progress: bool = True,
    overwrite: bool = True,
    nthread: int | None = None,
    reorder_v_heads: bool = True,
    on_tensor: Callable[[PlannedTensor], None] | None = None,
    imatrix: str | Path | None = None,
    imatrix_chunks: int | None = None,
) -> Path:
    """`convert_checkpoint`, with two seams the tests use: ``reorder_v_heads=False`` (to show
    that the reorder matters) and ``on_tensor`` (called before each tensor is written)."""
    q = parse_quant(quant)
    if q.direct:
        imatrix = None  # written directly: nothing is rounded with an importance weighting
    if q.needs_imatrix and imatrix is None:
        raise ConversionError(
            f"{q.name} needs an importance matrix: add --imatrix auto (computed from "
            "tmax-2b's trajectories) or --imatrix FILE"
        )
    im_loaded = None
    if imatrix is not None and str(imatrix) != "auto":
        from tmax_local.convert.imatrix import load as load_imatrix

        im_loaded = load_imatrix(imatrix)
    user = parse_tensor_types(tensor_types)
    ckpt, hp, plan = prepare(source, revision=revision, progress=progress)
    if not reorder_v_heads:
        plan = plan_tensors(ckpt, hp, reorder_v_heads=False)
    vocab = load_vocab(ckpt, hp.vocab_size)
    name = _model_name(source, ckpt)
    out = Path(output).expanduser() if output else default_output(name, q.name, revision)
    if out.exists() and out.is_dir():
        raise ConversionError(f"output {out} is a directory")
    if out.exists() and not overwrite:
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _os_error(err, out.parent) from None
    if not os.access(out.parent, os.W_OK):
        raise ConversionError(f"cannot write to {out.parent}: permission denied")

    need = estimate_size(plan, q)
    if not q.direct:
        need += sum(nbytes_for(t.shape, _intermediate_type(t, "F16", user)) for t in plan)
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise ConversionError(
            f"not enough space in {out.parent}: about {need / 1e9:.1f} GB needed, "
            f"{free / 1e9:.1f} GB free"
        )

    def write(path: Path, type_of: Callable[[PlannedTensor], str], ftype: int) -> None:
        write_gguf(
            path,
            model_name=name,
            hp=hp,
            vocab=vocab,
            chat_template=ckpt.chat_template,
            plan=plan,
            type_of=type_of,
            file_type=ftype,
            progress=progress,
            on_tensor=on_tensor,
        )

    stem = out.name
    try:
        with _temp_path(out.parent, stem, ".partial") as tmp:
            if q.direct:
                write(tmp, lambda t: _direct_type(t, q.name, user), q.ftype)
            else:
                base = "BF16" if ckpt.source_dtype == "BF16" else "F16"
                with _temp_path(out.parent, stem, f".{base}.partial") as mid:
                    write(mid, lambda t: _intermediate_type(t, base, user), QUANT_TYPES[base].ftype)
                    if imatrix is not None and str(imatrix) == "auto":
                        im_loaded = _auto_imatrix(
                            ckpt, mid, out, name, base, imatrix_chunks, nthread, progress
                        )
                    run_llama_quantize(
                        str(mid),
                        str(tmp),
                        q,
                        user + list(DEFAULT_RECIPE),
                        nthread=nthread,
                        progress=progress,
                        imatrix=im_loaded,
                    )
                if tmp.stat().st_size == 0:
                    raise ConversionError(f"llama.cpp quantizer produced no output for {q.name}")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private
            os.replace(tmp, out)
    except KeyboardInterrupt:
        raise Interrupted("conversion interrupted; no output file was written") from None
    except OSError as err:
        raise _os_error(err, out) from None
    return out


def _source_fingerprint(ckpt: Checkpoint) -> str:
    """Identity of a checkpoint's content for caches: config and every tensor file's name,
    size and modification time."""
    import hashlib

    h = hashlib.sha256()
    root = ckpt.path
    for f in sorted(root.iterdir()):
        if f.name == "config.json":
            h.update(f.read_bytes())
        elif f.suffix == ".safetensors":
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def auto_imatrix_path(
    ckpt: Checkpoint, out: Path, name: str, base: str, chunks: int | None
) -> Path:
    """Where ``--imatrix auto`` caches its matrix for this source, text and settings."""
    import hashlib

    from tmax_local.convert.calibration import (
        DEFAULT_CHUNK_SIZE,
        documents_digest,
        trajectory_documents,
    )
    from tmax_local.convert.imatrix import DEFAULT_CHUNKS

    key = hashlib.sha256(
        "\0".join(
            [
                _source_fingerprint(ckpt),
                base,
                documents_digest(trajectory_documents("calibration")),
                str(DEFAULT_CHUNK_SIZE),
                str(chunks or DEFAULT_CHUNKS),
            ]
        ).encode()
    ).hexdigest()[:12]
    return out.parent / f"{name}-{key}.imatrix.gguf"


def _auto_imatrix(
    ckpt: Checkpoint,
    mid: Path,
    out: Path,
    name: str,
    base: str,
    chunks: int | None,
    nthread: int | None,
    progress: bool,
):
    from tmax_local.convert import imatrix as imx
    from tmax_local.convert.calibration import DEFAULT_CHUNK_SIZE, trajectory_documents

    path = auto_imatrix_path(ckpt, out, name, base, chunks)
    if path.is_file():
        return imx.load(path)
    im = imx.collect(
        mid,
        docs=trajectory_documents("calibration"),
        chunk_size=DEFAULT_CHUNK_SIZE,
        max_chunks=chunks or imx.DEFAULT_CHUNKS,
        datasets=["tmax-2b trajectories (calibration split, rollout format)"],
        threads=nthread,
        progress=progress,
    )
    imx.save(im, path)
    return im
