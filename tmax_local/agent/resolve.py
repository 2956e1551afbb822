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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tmax_local.convert.quants import DEFAULT_QUANT
from tmax_local.errors import HubUnreachable, ModelNotFound

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
    converted = default_output(name, quant, revision)
    if converted.is_file():
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


def converted_path(
    spec: str | None, quant: str = DEFAULT_QUANT, revision: str | None = None
) -> Path | None:
    """Where `resolve_model` looks for the converted GGUF of repo id ``spec`` (None when
    ``spec`` is not a repo id)."""
    from tmax_local.convert import default_output

    repo = _repo_spec(spec)
    if repo is None:
        return None
    return default_output(repo.rstrip("/").split("/")[-1], quant.upper(), revision)


def needs_fetch(
    spec: str | None, quant: str = DEFAULT_QUANT, revision: str | None = None
) -> bool:
    """True when `resolve_model` would download or convert ``spec`` (a repo id not
    converted yet)."""
    path = converted_path(spec, quant, revision)
    return path is not None and not path.is_file()


def check_local(
    spec: str | None, quant: str = DEFAULT_QUANT, revision: str | None = None
) -> None:
    """Raise `ModelNeedsFetch` when resolving ``spec`` would download or convert it."""
    if needs_fetch(spec, quant, revision):
        raise ModelNeedsFetch(
            f"{spec or DEFAULT_MODEL} is not converted yet (looked for "
            f"{converted_path(spec, quant, revision)})."
        )


def _from_hub(repo: str, quant: str, revision: str | None, progress: bool) -> ResolvedModel:
    from tmax_local import download

    online = hub_reachable()
    if not online:
        _go_offline()
    try:
        files = download.remote_files(repo, revision) if online else None
        if files is None:  # offline: what the cache holds tells a GGUF repo apart
            files = download.cached_files(repo, revision)
        if any(f.lower().endswith(".gguf") for f in files):
            wanted = _pick_gguf_file(files, quant)
            if wanted is None:
                have = ", ".join(sorted(Path(f).name for f in files if f.lower().endswith(".gguf")))
                raise ModelNotFound(f"{repo} has no GGUF file for {quant} (it has: {have})")
            folder = download.fetch(
                repo, revision=revision, patterns=[wanted], progress=progress, online=online
            )
            return ResolvedModel("gguf", folder / wanted, repo)
        return ResolvedModel("gguf", _convert(repo, quant, revision, progress), repo)
    except HubUnreachable:
        raise ModelNotFound(_offline_hint(repo, quant)) from None


def _convert(source: str, quant: str, revision: str | None, progress: bool) -> Path:
    from tmax_local.convert import convert_checkpoint

    return convert_checkpoint(
        source, quant=quant, revision=revision, progress=progress, overwrite=False
    )


def fit_to_memory(
    path: Path, options: EngineOptions, *, available: int | None = None
) -> tuple[EngineOptions, str | None]:
    """The options a GGUF is loaded with on this machine, and a warning when it will not fit.

    The same computation as `tmax-local doctor` (`tmax_local.memory.choose`): the default
    context (``harness.CONTEXT_TOKENS``, 64k) and KV type mean "up to": they are lowered to
    the largest context (then a q8_0 KV cache) that fits the free RAM. A context or KV type
    the user set is kept. Either way, a configuration that still does not fit comes with a
    warning to show before loading. Not applied when layers are offloaded to a GPU (the RAM
    estimate would not hold there).
    """
    from dataclasses import replace

    from tmax_local import memory
    from tmax_local.agent import harness
    from tmax_local.agent.engine import default_gpu_layers

    gpu_layers = default_gpu_layers() if options.gpu_layers is None else options.gpu_layers
    if gpu_layers != 0:
        return options, None
    try:
        facts = memory.ModelFacts.from_gguf(path)
    except memory.ModelFileError:
        return options, None  # llama.cpp reports an unreadable file itself
    auto_ctx = options.ctx == harness.CONTEXT_TOKENS
    auto_kv = options.cache_type_k is None and options.cache_type_v is None
    choice = memory.choose(
        facts,
        memory.available_ram() if available is None else available,
        n_ctx=None if auto_ctx else options.ctx,
        type_k=None if auto_kv else (options.cache_type_k or "f16"),
        type_v=None if auto_kv else (options.cache_type_v or "f16"),
        flash_attn=options.flash_attn is not False,
    )
    if auto_kv and choice.type_k != "f16":
        options = replace(options, cache_type_k=choice.type_k, cache_type_v=choice.type_v)
    if auto_ctx:
        options = replace(options, ctx=choice.n_ctx)
    return options, choice.warning


def load_backend(
    resolved: ResolvedModel,
    options: EngineOptions | None = None,
    *,
    on_progress: Callable[[float], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ModelBackend:
    """Instantiate the backend: ``ScriptedModel``, ``LlamaEngine`` or ``RemoteEngine``
    (connects and checks the server). A GGUF's context and
    KV type are fitted to the free RAM first (`fit_to_memory`; ``on_warning`` hears when it
    will not fit); ``on_progress`` gets the load fraction 0.0 … 1.0 from llama.cpp."""
    from tmax_local.agent.engine import EngineOptions, LlamaEngine

    options = options or EngineOptions()
    if resolved.kind == "remote" and resolved.remote is not None:
        from tmax_local.agent.remote import RemoteEngine

        return RemoteEngine(resolved.remote)
    if resolved.kind == "script":
        from tmax_local.agent.scripted import ScriptedModel

        return ScriptedModel.from_file(resolved.path, context_limit=options.ctx)
    options, warning = fit_to_memory(resolved.path, options)
    if warning and on_warning is not None:
        on_warning(warning)
    return LlamaEngine(resolved.path, options, name=resolved.name, on_load_progress=on_progress)
