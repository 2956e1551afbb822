"""``--model`` → something the agent can load (shared by the CLI and the TUI).

Accepted forms, tried in this order:

- ``script:PATH`` — a JSON list of raw replies for ``ScriptedModel`` (no model needed);
- a ``.gguf`` file;
- a local directory: a Hugging Face checkpoint (converted once with ``tmax_local.convert``
  to ``models/<dir>-<QUANT>.gguf`` and reused) or a folder holding GGUF files (the one whose
  name contains the quant is picked);
- a Hugging Face repo id ``owner/name`` (default ``allenai/tmax-2b``): an already converted
  ``models/<name>-<QUANT>.gguf`` is reused without touching the network; otherwise the repo
  is inspected: a GGUF repo gets the file for the requested quant downloaded, a checkpoint
  repo is downloaded and converted once.

Offline with nothing usable present: one ``ModelNotFound`` line saying what to do.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tmax_local.convert.quants import DEFAULT_QUANT
from tmax_local.errors import HubUnreachable, ModelNotFound, TmaxError

if TYPE_CHECKING:
    from tmax_local.agent.engine import EngineOptions
    from tmax_local.agent.protocols import ModelBackend
    from tmax_local.agent.remote import RemoteOptions

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_QUANT",
    "ModelNeedsFetch",
    "ResolvedModel",
    "check_local",
    "converted_path",
    "hub_reachable",
    "load_backend",
    "needs_fetch",
    "resolve_model",
]

DEFAULT_MODEL = "allenai/tmax-2b"


@dataclass(frozen=True)
class ResolvedModel:
    kind: str  # "gguf" | "script" | "remote"
    path: Path
    name: str  # for display: the repo id, file name or server URL
    remote: RemoteOptions | None = None  # kind "remote": how to reach the model server


def _offline_hint(model: str, quant: str) -> str:
    return (
        f"{model} is not available locally and the Hugging Face Hub cannot be reached. "
        f"Connect once and run `tmax-local convert {model} --quant {quant}` (or pass "
        f"--model PATH.gguf / a checkpoint directory)."
    )


def _gguf_in_dir(directory: Path, quant: str) -> Path | None:
    files = sorted(directory.glob("*.gguf"))
    if not files:
        return None
    for f in files:
        if quant.lower() in f.name.lower():
            return f
    if len(files) == 1:
        return files[0]
    raise ModelNotFound(
        f"{directory} holds several GGUF files and none matches {quant}; "
        "pass the file itself with --model"
    )


def _pick_gguf_file(files: list[str], quant: str) -> str | None:
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    exact = [f for f in ggufs if quant.lower() in Path(f).name.lower()]
    if exact:
        return min(exact, key=len)
    return None


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the Hub endpoint (so offline use fails fast, not after retries)."""
    if _is_offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout).close()
    except OSError:
        return False
    return True


def _go_offline() -> None:
    # Make huggingface_hub use only its local cache from now on in this process.
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True


def resolve_model(
    model: str | None = None,
    quant: str = DEFAULT_QUANT,
    *,
    revision: str | None = None,
    progress: bool = True,
) -> ResolvedModel:
    """Find (downloading/converting once if needed) the model file for ``--model``."""
    model = (model or DEFAULT_MODEL).strip()
    quant = quant.upper()
    if model.startswith("script:"):
        path = Path(model[len("script:") :]).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"model script not found: {path}")
        return ResolvedModel("script", path, f"script:{path.name}")

    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelNotFound(f"{path} is not a GGUF file")
        return ResolvedModel("gguf", path, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ResolvedModel("gguf", _convert(str(path), quant, None, progress), path.name)
        found = _gguf_in_dir(path, quant)
        if found is None:
            raise ModelNotFound(f"{path} holds neither a checkpoint (config.json) nor GGUF files")
        return ResolvedModel("gguf", found, found.name)

    from tmax_local.convert.source import looks_like_repo_id

    if not looks_like_repo_id(model):
        raise ModelNotFound(
            f"model not found: {model} is not a file, a directory or a repo id "
            "like 'allenai/tmax-2b'"
        )
    from tmax_local.convert import default_output

    name = model.rstrip("/").split("/")[-1]
    converted = default_output(name, quant)
    if converted.is_file() and revision is None:
        return ResolvedModel("gguf", converted, model)
    return _from_hub(model, quant, revision, progress)


class ModelNeedsFetch(ModelNotFound):
    """The model is a Hub repo not converted here yet: fetch it only if the user asks."""

    title = "Model not downloaded"


def _repo_spec(spec: str | None) -> str | None:
    """The repo id ``spec`` names, or None for a script, a file or a directory."""
    from tmax_local.convert.source import looks_like_repo_id

    spec = (spec or DEFAULT_MODEL).strip()
    if spec.startswith("script:") or Path(spec).expanduser().exists():
        return None
    return spec if looks_like_repo_id(spec) else None


def converted_path(spec: str | None, quant: str = DEFAULT_QUANT) -> Path | None:
    """Where `resolve_model` looks for the converted GGUF of repo id ``spec`` (None when
    ``spec`` is not a repo id)."""
    from tmax_local.convert import default_output

    repo = _repo_spec(spec)
    if repo is None:
        return None
    return default_output(repo.rstrip("/").split("/")[-1], quant.upper())


def needs_fetch(spec: str | None, quant: str = DEFAULT_QUANT) -> bool:
    """True when `resolve_model` would download or convert ``spec`` (a repo id not
    converted yet)."""
    path = converted_path(spec, quant)
    return path is not None and not path.is_file()


def check_local(spec: str | None, quant: str = DEFAULT_QUANT) -> None:
    """Raise `ModelNeedsFetch` when resolving ``spec`` would download or convert it."""
    if needs_fetch(spec, quant):
        raise ModelNeedsFetch(
            f"{spec or DEFAULT_MODEL} is not converted yet (looked for "
            f"{converted_path(spec, quant)})."
        )


def _from_hub(repo: str, quant: str, revision: str | None, progress: bool) -> ResolvedModel:
    try:
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as err:  # pragma: no cover - a runtime dependency
        raise TmaxError(f"huggingface-hub is not installed ({err})") from None

    files: list[str] | None = None
    if hub_reachable():
        try:
            info = HfApi().model_info(repo, revision=revision)
            files = [s.rfilename for s in (info.siblings or [])]
        except (HfHubHTTPError, OSError, ValueError):
            files = None  # unknown here: the converter's download reports why below
    else:
        _go_offline()
    if files is not None and any(f.lower().endswith(".gguf") for f in files):
        wanted = _pick_gguf_file(files, quant)
        if wanted is None:
            have = ", ".join(sorted(Path(f).name for f in files if f.lower().endswith(".gguf")))
            raise ModelNotFound(f"{repo} has no GGUF file for {quant} (it has: {have})")
        try:
            local = hf_hub_download(repo, wanted, revision=revision)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            raise ModelNotFound(f"download of {repo}/{wanted} failed: {err}") from None
        return ResolvedModel("gguf", Path(local), repo)
    try:
        return ResolvedModel("gguf", _convert(repo, quant, revision, progress), repo)
    except HubUnreachable:
        if files is None:
            raise ModelNotFound(_offline_hint(repo, quant)) from None
        raise


def _convert(source: str, quant: str, revision: str | None, progress: bool) -> Path:
    from tmax_local.convert import convert_checkpoint

    return convert_checkpoint(
        source, quant=quant, revision=revision, progress=progress, overwrite=False
    )


def load_backend(resolved: ResolvedModel, options: EngineOptions | None = None) -> ModelBackend:
    """Instantiate the backend: ``ScriptedModel``, ``LlamaEngine`` or ``RemoteEngine``
    (connects and checks the server)."""
    from tmax_local.agent.engine import EngineOptions, LlamaEngine

    options = options or EngineOptions()
    if resolved.kind == "remote" and resolved.remote is not None:
        from tmax_local.agent.remote import RemoteEngine

        return RemoteEngine(resolved.remote)
    if resolved.kind == "script":
        from tmax_local.agent.scripted import ScriptedModel

        return ScriptedModel.from_file(resolved.path, context_limit=options.ctx)
    return LlamaEngine(resolved.path, options, name=resolved.name)
