"""Turn SOURCE (a local directory or a Hugging Face repo id) into a local directory."""

from __future__ import annotations

import re
from pathlib import Path

from tmax_local.errors import ConversionError, HubUnreachable

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
    HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE) with a progress bar.
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
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError as err:  # pragma: no cover - a runtime dependency
        raise ConversionError(f"huggingface-hub is not installed ({err})") from None
    if progress:
        enable_progress_bars()
    else:
        disable_progress_bars()
    try:
        local = snapshot_download(
            repo_id=text,
            revision=revision,
            allow_patterns=ALLOW_PATTERNS,
            cache_dir=str(cache_dir) if cache_dir else None,
        )
    except RevisionNotFoundError:
        raise ConversionError(f"{text}: revision {revision!r} not found on the Hub") from None
    except GatedRepoError:
        raise ConversionError(
            f"{text}: gated repository; log in with `hf auth login` first"
        ) from None
    except RepositoryNotFoundError:
        raise ConversionError(
            f"{text}: no such model repository on the Hub (or it is private)"
        ) from None
    except LocalEntryNotFoundError:
        raise HubUnreachable(
            f"{text}: not in the local Hugging Face cache and the Hub cannot be reached (offline?)"
        ) from None
    except OSError as err:
        raise ConversionError(f"download of {text} failed: {err}") from None
    finally:
        if not progress:
            enable_progress_bars()
    return Path(local)
