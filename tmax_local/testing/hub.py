"""A Hugging Face Hub stand-in on 127.0.0.1 for tests and demos (stdlib only).

The real ``huggingface_hub`` client talks to it through ``HF_ENDPOINT``. It answers the
requests a download makes, with the headers the client reads (see ``get_hf_file_metadata``
and ``http_get`` in huggingface_hub's ``file_download.py``):

- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: ``id``, ``sha`` (the
  commit the branch, tag or commit ``rev`` points to) and ``siblings``;
- ``GET /api/models/{repo}/tree/{rev}[/{dir}]``: file entries with ``size``, ``oid`` and,
  for large files, ``lfs`` {``oid``: sha256, ``size``, ``pointerSize``};
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: small files directly (``ETag`` = git blob
  id, ``X-Repo-Commit``, ``Content-Length``); large (LFS) files as a 302 to a "CDN" URL on
  another origin (``http://localhost:PORT/cdn/…``) with ``X-Linked-Etag`` (sha256),
  ``X-Linked-Size`` and ``X-Repo-Commit``, as the Hub does;
- ``GET /cdn/{sha256}``: the bytes, honouring ``Range`` (206 + ``Content-Range``).

Errors carry the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``). Faults can be injected per file: drop the connection after N bytes,
serve corrupted bytes, throttle to a rate. ``requests`` logs what was asked.

    hub = FakeHub()
    hub.add_repo("allenai/tmax-2b", checkpoint_dir, tags=["step-0200"])
    with hub:  # serving
        os.environ["HF_ENDPOINT"] = hub.endpoint
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")
LFS_MIN_SIZE = 10 * 1024 * 1024  # like a .gitattributes: large files go through LFS
CHUNK = 64 * 1024


@dataclass(frozen=True)
class HubFile:
    path: str  # path in the repo
    source: Path  # where the bytes are on disk
    size: int
    sha256: str
    git_oid: str  # git blob id (sha1 of "blob SIZE\0" + bytes)
    lfs: bool

    @classmethod
    def from_disk(cls, path: str, source: Path) -> HubFile:
        sha256 = hashlib.sha256()
        sha1 = hashlib.sha1(f"blob {source.stat().st_size}\0".encode())
        with source.open("rb") as f:
            while block := f.read(1 << 20):
                sha256.update(block)
                sha1.update(block)
        size = source.stat().st_size
        lfs = path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE
        return cls(path, source, size, sha256.hexdigest(), sha1.hexdigest(), lfs)


@dataclass
class Fault:
    """What goes wrong when a file's bytes are served (GET requests only).

    The first ``times`` requests (``None``: all) get the fault: the connection is cut after
    ``drop_after`` body bytes, and/or every byte is flipped (``corrupt``: size unchanged,
    content wrong). After that, ``then_down`` cuts every further request before its first
    byte (the link to this file stays down); otherwise the file is served normally.
    ``rate`` (bytes per second) throttles every request.
    """

    drop_after: int | None = None
    corrupt: bool = False
    times: int | None = 1
    then_down: bool = False
    rate: float | None = None
    served: int = 0  # requests seen so far


@dataclass
class Request:
    method: str
    path: str  # the URL path asked for
    name: str | None  # the repo file it served, if any
    range: str | None
    status: int
    body_bytes: int = 0


@dataclass
class _Repo:
    repo_id: str
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)  # sha -> files
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag -> sha


class FakeHub:
    """A threaded HTTP server speaking enough of the Hub's API for downloads."""

    def __init__(self) -> None:
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, HubFile] = {}  # sha256 -> file
        self.faults: dict[str, Fault] = {}  # repo path (e.g. model.safetensors) -> fault
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- content ---------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        files: Path | dict[str, Path],
        *,
        branch: str = "main",
        tags: list[str] | tuple[str, ...] = (),
    ) -> str:
        """Add (or add a commit to) a repo; ``files`` is a directory (every file in it) or
        a mapping repo path -> local file. ``branch`` and ``tags`` point to the new commit,
        whose 40-hex sha is returned."""
        if isinstance(files, Path):
            root = files
            files = {
                p.relative_to(root).as_posix(): p
                for p in sorted(root.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            }
        entries = {name: HubFile.from_disk(name, Path(src)) for name, src in files.items()}
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(entries):
            digest.update(f"{name}:{entries[name].sha256}\n".encode())
        repo = self._repos.setdefault(repo_id, _Repo(repo_id))
        digest.update(str(len(repo.commits)).encode())
        sha = digest.hexdigest()
        repo.commits[sha] = entries
        for ref in (branch, *tags):
            repo.refs[ref] = sha
        for f in entries.values():
            self._blobs[f.sha256] = f
        return sha

    def commit_of(self, repo_id: str, revision: str = "main") -> str:
        repo = self._repos[repo_id]
        return revision if revision in repo.commits else repo.refs[revision]

    def file(self, repo_id: str, path: str, revision: str = "main") -> HubFile:
        return self._repos[repo_id].commits[self.commit_of(repo_id, revision)][path]

    def body_requests(self, name: str) -> list[Request]:
        """GET requests that were answered with (some of) the bytes of repo file ``name``."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "GET" and r.name == name and r.status in (200, 206)
            ]

    # -- serving ---------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections (new ones are refused, like a network
        outage; kept-alive ones do not outlive it)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeHub:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.hub._lock:
            self.hub._connections.add(self.connection)

    def finish(self) -> None:
        with self.hub._lock:
            self.hub._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # -- plumbing --------------------------------------------------------------------
    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        sent = len(body) if self.command != "HEAD" else 0
        self.hub._log(
            Request(self.command, self.path, None, self.headers.get("Range"), status, sent)
        )

    def _json(self, data: object) -> None:
        body = json.dumps(data).encode()
        self._send(200, {"Content-Type": "application/json"}, body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(
            status,
            {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message},
            body,
        )

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    # -- routes ----------------------------------------------------------------------
    def _route(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                self._api(f"{parts[2]}/{parts[3]}", parts[4:])
            elif parts[:1] == ["cdn"] and len(parts) == 2:
                self._cdn(parts[1])
            elif len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            else:
                self._error(404, "NotFound", f"no route for {url.path}")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _repo_commit(self, repo_id: str, revision: str) -> tuple[_Repo, str] | None:
        repo = self.hub._repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", f"Repository not found: {repo_id}")
            return None
        sha = revision if revision in repo.commits else repo.refs.get(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo, sha

    def _api(self, repo_id: str, rest: list[str]) -> None:
        if not rest:
            revision = "main"
        elif rest[0] == "revision" and len(rest) == 2:
            revision = rest[1]
        elif rest[0] == "tree" and len(rest) >= 2:
            found = self._repo_commit(repo_id, rest[1])
            if found is None:
                return
            repo, sha = found
            prefix = "/".join(rest[2:])
            entries = []
            for f in repo.commits[sha].values():
                if prefix and not f.path.startswith(prefix + "/"):
                    continue
                entry: dict[str, object] = {
                    "type": "file",
                    "oid": f.git_oid,
                    "size": f.size,
                    "path": f.path,
                }
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
                entries.append(entry)
            self._json(entries)
            return
        else:
            self._error(404, "NotFound", "unknown api route")
            return
        found = self._repo_commit(repo_id, revision)
        if found is None:
            return
        repo, sha = found
        files = repo.commits[sha]
        self._json(
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": False,
                "gated": False,
                "disabled": False,
                "tags": [],
                "siblings": [{"rfilename": name} for name in sorted(files)],
            }
        )

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        found = self._repo_commit(repo_id, revision)
        if found is None:
            return
        repo, sha = found
        f = repo.commits[sha].get(path)
        if f is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", sha)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.hub._log(Request(self.command, self.path, path, None, 404))
            return
        if f.lfs:
            # The Hub redirects LFS files to its CDN (another origin, so the client keeps
            # the metadata of this response and does not follow a HEAD there).
            location = f"http://localhost:{self.hub.port}/cdn/{f.sha256}"
            self._send(
                302,
                {
                    "Location": location,
                    "X-Repo-Commit": sha,
                    "X-Linked-Etag": f'"{f.sha256}"',
                    "X-Linked-Size": str(f.size),
                    "ETag": f'"{f.git_oid}"',
                },
            )
            return
        self._body(f, {"ETag": f'"{f.git_oid}"', "X-Repo-Commit": sha})

    def _cdn(self, sha256: str) -> None:
        f = self.hub._blobs.get(sha256)
        if f is None:
            self._error(404, "NotFound", "no such blob")
            return
        self._body(f, {"ETag": f'"{f.sha256}"'})

    def _body(self, f: HubFile, headers: dict[str, str]) -> None:
        start, end = 0, f.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[len("bytes=") :].split(",")[0].partition("-")
            if first:
                start = int(first)
                end = min(int(last), f.size - 1) if last else f.size - 1
            elif last:  # suffix range
                start = max(0, f.size - int(last))
            if start >= f.size:
                self._send(416, {"Content-Range": f"bytes */{f.size}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = end - start + 1
        limit, corrupt, rate = length, False, None
        fault = self.hub.faults.get(f.path) if self.command == "GET" else None
        if fault is not None:
            with self.hub._lock:
                n = fault.served
                fault.served += 1
            rate = fault.rate
            if fault.times is None or n < fault.times:
                if fault.drop_after is not None:
                    limit = min(length, fault.drop_after)
                corrupt = fault.corrupt
            elif fault.then_down:
                limit = 0
        self.send_response(status)
        for k, v in {**headers, "Accept-Ranges": "bytes", "Content-Length": str(length)}.items():
            self.send_header(k, v)
        self.end_headers()
        req = Request(self.command, self.path, f.path, rng, status)
        sent = 0
        t0 = time.monotonic()
        try:
            if self.command == "HEAD":
                return
            with f.source.open("rb") as fh:
                fh.seek(start)
                while sent < limit:
                    block = fh.read(min(CHUNK, limit - sent))
                    if not block:
                        break
                    if corrupt:
                        block = bytes(b ^ 0x5A for b in block)
                    self.wfile.write(block)
                    sent += len(block)
                    if rate:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            if sent < length:
                # Cut the connection mid-body, as a dropped network link does.
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
        finally:
            req.body_bytes = sent
            self.hub._log(req)
