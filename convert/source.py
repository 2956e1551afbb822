"""Turn SOURCE (a local directory or a Hugging Face repo id) into a local directory."""

from __future__ import annotations

import re
from pathlib import Path

from tmax_local.errors import ConversionError

# Only what the converter reads: config, tokenizer, chat template, weights.
ALLOW_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "*.safetensors",
    "model.safetensors.index.json",
]

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def looks_like_repo_id(source: str) -> bool:
    return bool(_REPO_ID.match(source)) and ".." not in source


def resolve_source(
    source: str | Path,
    *,
    revision: str | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> Path:
    """A local checkpoint directory for ``source``.

    An existing directory is used as is (``revision`` must then be None). Otherwise a
    string of the form ``owner/name`` is downloaded from the Hugging Face Hub (honouring
    HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE) with a progress bar and verified
    (`tmax_local.download.fetch`; its errors are `DownloadError` lines).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ConversionError(
                "--revision applies to Hugging Face repo ids, not local directories"
            )
        return path
    text = str(source)
    if not looks_like_repo_id(text):
        raise ConversionError(
            f"checkpoint not found: {text} is neither a directory nor a repo id "
            "like 'hamishivi/tmax-2b'"
        )
    from tmax_local.download import fetch

    return fetch(
        text, revision=revision, patterns=ALLOW_PATTERNS, progress=progress, cache_dir=cache_dir
    )
