"""A GGUF for measuring: the file itself, or a checkpoint converted on the fly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tmax_local.errors import ConversionError


def is_gguf(source: str | Path) -> bool:
    p = Path(source).expanduser()
    if p.is_file():
        with p.open("rb") as f:
            return f.read(4) == b"GGUF"
    return False


@contextmanager
def as_gguf(
    source: str | Path,
    quant: str | None = None,
    *,
    work_dir: Path,
    revision: str | None = None,
    progress: bool = False,
    threads: int | None = None,
) -> Iterator[Path]:
    """Yield a GGUF path for ``source``: a .gguf as is; a checkpoint directory or repo id
    converted to ``quant`` (default BF16 for bf16 weights, else F16) into a temp file in
    ``work_dir`` that is removed afterwards."""
    p = Path(source).expanduser()
    if p.is_file():
        if not is_gguf(p):
            raise ConversionError(f"{p} is not a GGUF file")
        yield p
        return
    import tempfile

    from tmax_local.convert.api import convert_checkpoint, prepare

    ckpt, _, _ = prepare(source, revision=revision, progress=progress)
    qname = quant or ("BF16" if ckpt.source_dtype == "BF16" else "F16")
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmax-measure-", dir=work_dir) as tmp:
        out = convert_checkpoint(
            ckpt.path,
            qname,
            Path(tmp) / f"source-{qname}.gguf",
            progress=progress,
            nthread=threads,
        )
        yield out


def reference_for(
    source: str | Path, *, revision: str | None = None, progress: bool = False
) -> Path:
    """A 16-bit reference GGUF for a checkpoint: converted once into the models directory
    (``<model>-BF16.gguf`` or ``-F16``) and reused."""
    from tmax_local.convert.api import convert_checkpoint, prepare

    ckpt, _, _ = prepare(source, revision=revision, progress=progress)
    qname = "BF16" if ckpt.source_dtype == "BF16" else "F16"
    return convert_checkpoint(
        source, qname, None, revision=revision, progress=progress, overwrite=False
    )
