"""A small blocking HTTP/1.1 JSON client for OpenAI-compatible model servers (stdlib only).

Why not a library: we need two things the usual clients make awkward — closing a streamed
response *from another thread* at once (Ctrl+X while the server is still prefilling), which
here is a ``socket.shutdown`` of the live connection, and reading Server-Sent Events line by
line as they arrive. ``http.client`` gives both with no extra dependency.

Errors are ``OSError`` subclasses from the socket layer (refused, reset, timed out) or
``HttpStatusError`` for a non-2xx answer (with the server's error message when it sent one).
The API key goes into the ``Authorization`` header only; it is never part of a message.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class StreamDropped(Exception):
    """A streamed answer ended abnormally (connection reset or closed mid-stream)."""


class HttpStatusError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, body: Any = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.body = status, message, body


@dataclass(frozen=True)
class Endpoint:
    """Where the server is: scheme, host, port and the path prefix of the OpenAI API."""

    scheme: str
    host: str
    port: int
    root: str  # path before /v1 ("" normally; "/proxy" behind a path-routing proxy)

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``http(s)://HOST[:PORT][/prefix][/v1][/]`` → Endpoint (ValueError when not a URL)."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        path = parts.path.rstrip("/")
        path = path.removesuffix("/v1")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, path)

    @property
    def display(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.root}"


def _error_message(body: Any, raw: bytes) -> str:
    """The human part of an error body (first line, at most 300 characters)."""
    text = _error_text(body, raw).strip()
    first = text.splitlines()[0] if text else ""
    return (first[:300] + ("…" if len(first) > 300 else "")) or "(no message)"


def _error_text(body: Any, raw: bytes) -> str:
    """OpenAI ``{"error": {"message"}}``, vLLM/FastAPI ``{"detail"}`` / ``{"message"}``, or
    the raw text."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "detail", "msg"):
                if err.get(key):
                    return str(err[key])
        elif isinstance(err, str):
            return err
        if "detail" in body:
            return str(body["detail"])
    return raw.decode("utf-8", "replace")


class HttpClient:
    """One connection per request (a streamed reply holds its own connection)."""

    def __init__(
        self,
        endpoint: Endpoint,
        api_key: str | None = None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
    ):
        self.endpoint = endpoint
        self._api_key = api_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def _headers(self, body: bytes | None) -> dict[str, str]:
        h = {"Accept": "application/json, text/event-stream", "User-Agent": "tmax-local"}
        if body is not None:
            h["Content-Type"] = "application/json"
        if self._api_key:
            h["Authorization"] = f"Bearer {self._api_key}"
        return h

    def _connect(self) -> http.client.HTTPConnection:
        e = self.endpoint
        conn: http.client.HTTPConnection
        if e.scheme == "https":
            conn = http.client.HTTPSConnection(
                e.host, e.port, timeout=self.connect_timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(e.host, e.port, timeout=self.connect_timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout)
        return conn

    def _send(
        self, method: str, path: str, payload: Any | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        conn = self._connect()
        try:
            conn.request(method, self.endpoint.root + path, body=body, headers=self._headers(body))
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            raise HttpStatusError(resp.status, _error_message(parsed, raw), parsed)
        return conn, resp

    def request(self, method: str, path: str, payload: Any | None = None) -> Any:
        """A JSON request → the decoded JSON answer."""
        conn, resp = self._send(method, path, payload)
        try:
            raw = resp.read()
        finally:
            conn.close()
        try:
            return json.loads(raw)
        except ValueError:
            raise HttpStatusError(resp.status, "the answer is not JSON", None) from None

    def stream(self, path: str, payload: Any, cancel: threading.Event) -> Iterator[Any]:
        """POST ``payload`` and yield each Server-Sent Event's JSON data as it arrives.

        Ends at ``data: [DONE]`` or when the server closes the stream. When ``cancel`` is
        set, the connection is shut down at once (the server sees the client leave and stops
        generating) and the iteration ends quietly. A connection that drops otherwise raises
        ``StreamDropped``; a failure to connect raises the socket's ``OSError``.
        """
        conn, resp = self._send("POST", path, payload)
        done = threading.Event()
        sock = conn.sock

        def watch() -> None:
            while not done.is_set():
                if cancel.wait(0.05):
                    if not done.is_set() and sock is not None:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                    return

        watcher = threading.Thread(target=watch, name="tmax-http-cancel", daemon=True)
        watcher.start()
        data: list[str] = []
        try:
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException) as err:
                    if cancel.is_set():
                        return
                    raise StreamDropped(f"the connection dropped: {err}") from None
                if not line:
                    if cancel.is_set():
                        return
                    last = "\n".join(data).strip()
                    if last and last != "[DONE]":  # an event without its blank line
                        yield _parse_json(last)
                    return
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text.startswith("data:"):
                    data.append(text[5:].lstrip())
                elif text.startswith("error:"):
                    body = _parse_json(text[6:].strip())
                    raise HttpStatusError(500, _error_message(body, text.encode()), body)
                elif text == "" and data:
                    chunk = "\n".join(data)
                    data = []
                    if chunk.strip() == "[DONE]":
                        return
                    parsed = _parse_json(chunk)
                    if isinstance(parsed, dict) and "error" in parsed and len(parsed) <= 2:
                        raise HttpStatusError(
                            int(_err_code(parsed) or 500), _error_message(parsed, b""), parsed
                        )
                    yield parsed
                if cancel.is_set():
                    return
        finally:
            done.set()
            with contextlib.suppress(Exception):
                conn.close()


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise StreamDropped(f"the server sent a malformed event: {text[:120]!r}") from None


def _err_code(body: dict[str, Any]) -> Any:
    err = body.get("error")
    return err.get("code") if isinstance(err, dict) and isinstance(err.get("code"), int) else None
