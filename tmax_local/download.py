"""Downloads from the Hugging Face Hub: visible, resumable, verified, with one-line errors.

`fetch(repo, patterns=…)` returns the local snapshot folder of ``repo`` at ``revision`` in
the Hugging Face cache (``HF_HUB_CACHE``), holding the files that match ``patterns``. It
wraps ``huggingface_hub.snapshot_download`` (which does the HTTP work, writes each file to a
private temp name and renames it into place only when complete) and adds:

- **Progress** in bytes, rate and ETA over the whole download, measured from what is on
  disk (complete blobs plus the ``*.incomplete`` temp files), so it works with any
  huggingface_hub version. In a terminal it is a tqdm bar on stderr; the app passes a
  callback instead (`reporting`).
- **Verification**: every file is checked against the Hub's tree listing — its size, and
  its sha256 (LFS files) or git blob id (small files). A file that does not match, whether
  it was just downloaded or found in the cache, is deleted and fetched again once; twice
  wrong is an error. Checked files are remembered (path, size, mtime) so a reused cache is
  not hashed again.
- **Resuming**: complete files stay in the cache, so after a dropped connection the next
  run fetches only what is missing. The listing is kept (``data_dir()/hub-manifests``), so
  an offline run can verify what the cache holds.
- **Errors** as one `DownloadError` line: connection lost (with how much is kept), disk
  full (with where and how much is needed), no such repo/revision, offline and not cached.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tmax_local.errors import HubUnreachable, TmaxError


class DownloadError(TmaxError):
    title = "Download failed"


class DownloadOffline(DownloadError, HubUnreachable):
    """The Hub cannot be reached and the cache does not hold what is needed."""

    title = "Offline"


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    etag: str  # sha256 for LFS files, git blob id otherwise (the cache names blobs by it)
    lfs: bool


@dataclass(frozen=True)
class Progress:
    """Where a download stands: bytes on disk of the files wanted, rate, time left."""

    done: int
    total: int
    rate: float  # bytes per second, smoothed
    files_done: int
    files_total: int

    @property
    def eta(self) -> float | None:
        if self.rate <= 0 or self.done >= self.total:
            return None
        return (self.total - self.done) / self.rate

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def text(self) -> str:
        """E.g. ``412.0 MB / 1.3 GB · 35.2 MB/s · ETA 0:26``."""
        eta = self.eta
        eta_text = "—" if eta is None else _clock(eta)
        return (
            f"{human_bytes(self.done)} / {human_bytes(self.total)} · "
            f"{human_bytes(self.rate)}/s · ETA {eta_text}"
        )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# -- progress reporting ----------------------------------------------------------------
Reporter = Callable[[str, Progress], None]  # (description, progress)
_reporter: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "tmax_download_reporter", default=None
)


@contextlib.contextmanager
def reporting(callback: Reporter) -> Iterator[None]:
    """Send download progress to ``callback`` instead of a terminal bar (the app uses this)."""
    token = _reporter.set(callback)
    try:
        yield
    finally:
        _reporter.reset(token)


class _Monitor:
    """Polls the cache's blob folder and reports bytes, rate and ETA until stopped."""

    def __init__(
        self,
        blobs: Path,
        files: list[RemoteFile],
        desc: str,
        *,
        show_bar: bool,
        interval: float = 0.25,
    ) -> None:
        self.blobs = blobs
        self.files = files
        self.desc = desc
        self.total = sum(f.size for f in files)
        self.interval = interval
        self.callback = _reporter.get()
        self.bar: Any = None
        if show_bar and self.callback is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                unit="B",
                unit_scale=True,
                desc=desc,
                file=sys.stderr,
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                "[{elapsed}<{remaining}, {rate_fmt}]",
            )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="download-progress")
        self._rate = 0.0
        self._last: tuple[float, int] | None = None
        self.last: Progress | None = None

    def measure(self) -> tuple[int, int]:
        done = complete = 0
        for f in self.files:
            if (self.blobs / f.etag).is_file():
                done += f.size
                complete += 1
                continue
            for part in self.blobs.glob(f"{f.etag}*.incomplete"):
                with contextlib.suppress(OSError):
                    done += part.stat().st_size
        return min(done, self.total), complete

    def tick(self) -> Progress:
        done, complete = self.measure()
        now = time.monotonic()
        if self._last is not None:
            dt = now - self._last[0]
            if dt > 0:
                inst = max(0.0, (done - self._last[1]) / dt)
                self._rate = inst if self._rate == 0 else 0.7 * self._rate + 0.3 * inst
        self._last = (now, done)
        p = Progress(done, self.total, self._rate, complete, len(self.files))
        self.last = p
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        if self.callback is not None:
            self.callback(self.desc, p)
        return p

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def __enter__(self) -> _Monitor:
        self.tick()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.tick()
        if self.bar is not None:
            self.bar.close()


# -- verification ----------------------------------------------------------------------
def _manifest_dir() -> Path:
    from tmax_local.paths import data_dir

    return data_dir() / "hub-manifests"


def _manifest_path(repo: str, commit: str) -> Path:
    return _manifest_dir() / repo.replace("/", "--") / f"{commit}.json"


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def save_manifest(repo: str, commit: str, files: list[RemoteFile]) -> None:
    with contextlib.suppress(OSError):  # a convenience for offline checks; never fatal
        _write_json_atomic(_manifest_path(repo, commit), [asdict(f) for f in files])


def load_manifest(repo: str, commit: str) -> list[RemoteFile] | None:
    try:
        data = json.loads(_manifest_path(repo, commit).read_text(encoding="utf-8"))
        return [RemoteFile(**d) for d in data]
    except (OSError, ValueError, TypeError):
        return None


def _verified_db() -> Path:
    return _manifest_dir() / "verified.json"


def _load_verified() -> dict[str, list[int]]:
    try:
        data = json.loads(_verified_db().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_digest(path: Path, lfs: bool) -> str:
    """sha256 (LFS) or git blob id (``sha1("blob SIZE\\0" + bytes)``) of a file."""
    h = hashlib.sha256() if lfs else hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return h.hexdigest()


def check_file(local: Path, remote: RemoteFile, verified: dict[str, list[int]]) -> str | None:
    """Why ``local`` is not ``remote`` (None when it matches). Updates ``verified``."""
    try:
        real = local.resolve(strict=True)
        st = real.stat()
    except OSError:
        return "missing"
    if st.st_size != remote.size:
        return f"size {st.st_size} instead of {remote.size} bytes"
    key = str(real)
    stamp = [st.st_size, st.st_mtime_ns]
    if verified.get(key) == stamp and real.name == remote.etag:
        return None
    digest = file_digest(real, remote.lfs)
    if digest != remote.etag:
        return f"checksum {digest[:12]}… instead of {remote.etag[:12]}…"
    verified[key] = stamp
    return None


def _remove_cached(local: Path) -> None:
    """Delete a cached file: the snapshot's link and the blob it points to."""
    with contextlib.suppress(OSError):
        real = local.resolve()
        if real != local:
            real.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        local.unlink(missing_ok=True)


def verify_snapshot(folder: Path, files: list[RemoteFile]) -> dict[str, str]:
    """Check every file of ``files`` under ``folder``; return {path: problem} for the bad
    ones (after deleting them from the cache)."""
    verified = _load_verified()
    bad: dict[str, str] = {}
    for f in files:
        problem = check_file(folder / f.path, f, verified)
        if problem is not None:
            bad[f.path] = problem
            _remove_cached(folder / f.path)
    with contextlib.suppress(OSError):
        _write_json_atomic(_verified_db(), verified)
    return bad


# -- errors ----------------------------------------------------------------------------
def _network_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's transport errors (huggingface_hub 1.x uses httpx, 2.x httpx2)."""
    found: list[type[Exception]] = []
    for name in ("httpx2", "httpx", "requests"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        err = getattr(mod, "TransportError", None) or getattr(
            getattr(mod, "exceptions", None), "ConnectionError", None
        )
        if isinstance(err, type) and issubclass(err, Exception):
            found.append(err)
        timeout = getattr(mod, "TimeoutException", None)
        if isinstance(timeout, type) and issubclass(timeout, Exception):
            found.append(timeout)
    return tuple(found)


def _is_disk_full(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return False


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]


# -- the download ----------------------------------------------------------------------
def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _storage(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def is_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return env or bool(constants.HF_HUB_OFFLINE)


def list_files(repo: str, revision: str | None) -> tuple[str, list[RemoteFile]]:
    """(commit, files) of ``repo`` at ``revision`` from the Hub (raises the client's errors)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi()
    info = api.model_info(repo, revision=revision)
    commit = info.sha or ""
    files = []
    for entry in api.list_repo_tree(repo, revision=commit or revision, recursive=True):
        if not isinstance(entry, RepoFile):
            continue
        if entry.lfs is not None:
            files.append(RemoteFile(entry.path, int(entry.size), entry.lfs.sha256, True))
        else:
            files.append(RemoteFile(entry.path, int(entry.size), entry.blob_id, False))
    return commit, files


def remote_files(repo: str, revision: str | None) -> list[str] | None:
    """The file names of ``repo`` at ``revision`` on the Hub, or None when it cannot be
    reached. A missing repo or revision is a `DownloadError`."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        info = HfApi().model_info(repo, revision=revision)
    except RevisionNotFoundError:
        raise DownloadError(f"{repo}: revision {revision!r} not found on the Hub") from None
    except GatedRepoError:
        raise DownloadError(
            f"{repo}: gated repository; log in with `hf auth login` first"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadError(
            f"{repo}: no such model repository on the Hub (or it is private)"
        ) from None
    except (OSError, *_network_errors()):  # type: ignore[misc]
        return None
    return [s.rfilename for s in (info.siblings or [])]


def cached_files(repo: str, revision: str | None, cache_dir: str | Path | None = None) -> list[str]:
    """The file names the local cache holds for ``repo`` at ``revision`` (no network)."""
    storage = _storage(_cache_dir(cache_dir), repo)
    ref = storage / "refs" / (revision or "main")
    commit = revision or ""
    with contextlib.suppress(OSError):
        commit = ref.read_text(encoding="utf-8").strip()
    folder = storage / "snapshots" / commit if commit else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _matching(files: list[RemoteFile], patterns: list[str] | None) -> list[RemoteFile]:
    if patterns is None:
        return list(files)
    from huggingface_hub.utils import filter_repo_objects

    keep = set(filter_repo_objects([f.path for f in files], allow_patterns=patterns))
    return [f for f in files if f.path in keep]


def fetch(
    repo: str,
    *,
    revision: str | None = None,
    patterns: list[str] | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    online: bool | None = None,
) -> Path:
    """The local snapshot folder of ``repo`` at ``revision`` holding the files matching
    ``patterns`` (downloading and verifying what is missing). ``online=None`` asks
    huggingface_hub's offline setting; ``False`` uses only the cache."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = _cache_dir(cache_dir)
    rev_text = f" at {revision}" if revision else ""
    if online is None:
        online = not is_offline()
    if not online:
        return _from_cache(repo, revision, patterns, cache)
    network = _network_errors()
    try:
        commit, listing = list_files(repo, revision)
    except RevisionNotFoundError:
        raise DownloadError(f"{repo}: revision {revision!r} not found on the Hub") from None
    except GatedRepoError:
        raise DownloadError(
            f"{repo}: gated repository; log in with `hf auth login` first"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadError(
            f"{repo}: no such model repository on the Hub (or it is private)"
        ) from None
    except network:
        return _from_cache(repo, revision, patterns, cache)
    wanted = _matching(listing, patterns)
    if not wanted:
        raise DownloadError(f"{repo}{rev_text} has no files matching {', '.join(patterns or [])}")
    save_manifest(repo, commit, listing)
    storage = _storage(cache, repo)
    folder = storage / "snapshots" / commit
    # Anything already cached is checked first: a damaged file is fetched again below.
    present = [f for f in wanted if (folder / f.path).exists()]
    if present:
        verify_snapshot(folder, present)
    for attempt in (1, 2):
        need = sum(f.size for f in wanted if not (storage / "blobs" / f.etag).is_file())
        _check_space(cache, need, repo)
        desc = f"Downloading {repo}{rev_text}"
        try:
            with _Monitor(storage / "blobs", wanted, desc, show_bar=progress) as monitor:
                _snapshot(repo, revision, [f.path for f in wanted], cache_dir)
        except (RevisionNotFoundError, RepositoryNotFoundError) as err:
            raise DownloadError(f"{repo}: {_describe(err)}") from None
        except (OSError, *network) as err:  # type: ignore[misc]
            done, complete = monitor.measure()
            if _is_disk_full(err):
                raise DownloadError(
                    f"disk full while downloading {repo} into {cache}: about "
                    f"{human_bytes(monitor.total - done)} more is needed. The "
                    f"{complete} complete file(s) are kept; free some space (or point "
                    "HF_HUB_CACHE to a larger disk) and run the same command again"
                ) from None
            if isinstance(err, (LocalEntryNotFoundError, *network)) or attempt == 2:
                raise DownloadError(
                    f"download of {repo}{rev_text} interrupted ({_describe(err)}): "
                    f"{complete} of {len(wanted)} files complete "
                    f"({human_bytes(done)} of {human_bytes(monitor.total)}) are kept; "
                    "run the same command again to resume"
                ) from None
            # Another I/O error (e.g. huggingface_hub's own size check): fetch again below.
        bad = verify_snapshot(folder, wanted)
        if not bad:
            return folder
        if attempt == 2:
            name, problem = next(iter(bad.items()))
            raise DownloadError(
                f"{repo}/{name} was downloaded twice and does not match the Hub ({problem}); "
                "the damaged copy was deleted — try again later"
            )
        shown = ", ".join(f"{k} ({v})" for k, v in bad.items())
        print(f"tmax-local: damaged download, fetching again: {shown}", file=sys.stderr)
    raise AssertionError("unreachable")  # pragma: no cover


def _check_space(cache: Path, need: int, repo: str) -> None:
    probe = cache
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if need > free:
        raise DownloadError(
            f"not enough disk space to download {repo}: {human_bytes(need)} needed in "
            f"{cache}, {human_bytes(free)} free (point HF_HUB_CACHE to a larger disk)"
        )


def _snapshot(repo: str, revision: str | None, files: list[str], cache_dir: Any) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # our own bar covers the whole download
    # Its retry warnings ("Trying to resume download...") would print over the bar; what
    # failed in the end is reported as one line by `fetch`.
    hf_logger = logging.getLogger("huggingface_hub")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)
    try:
        return str(
            snapshot_download(
                repo_id=repo,
                revision=revision,
                allow_patterns=files,
                cache_dir=str(cache_dir) if cache_dir else None,
            )
        )
    finally:
        hf_logger.setLevel(level)
        if not was_disabled:
            enable_progress_bars()


def _from_cache(repo: str, revision: str | None, patterns: list[str] | None, cache: Path) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    rev_text = f" at {revision}" if revision else ""
    try:
        folder = Path(
            snapshot_download(
                repo_id=repo,
                revision=revision,
                allow_patterns=patterns,
                cache_dir=str(cache),
                local_files_only=True,
            )
        )
    except LocalEntryNotFoundError:
        raise DownloadOffline(
            f"{repo}{rev_text} is not in the local Hugging Face cache and the Hub cannot be "
            "reached (offline?)"
        ) from None
    manifest = load_manifest(repo, folder.name)
    if manifest is not None:
        wanted = _matching(manifest, patterns)
        bad = verify_snapshot(folder, wanted)
        if bad:
            name, problem = next(iter(bad.items()))
            raise DownloadOffline(
                f"the cached {repo}/{name} is damaged ({problem}) and was deleted; connect "
                "to the Hub and run the same command again to fetch it"
            )
    elif patterns is not None and not _matching(
        [
            RemoteFile(p.relative_to(folder).as_posix(), 0, "", False)
            for p in folder.rglob("*")
            if p.is_file()
        ],
        patterns,
    ):
        raise DownloadOffline(
            f"{repo}{rev_text}: the cache holds no files matching {', '.join(patterns)} and "
            "the Hub cannot be reached (offline?)"
        )
    return folder
