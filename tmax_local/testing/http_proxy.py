"""A forwarding HTTP proxy for tests of the remote engine: checks an API key, cuts streams.

It sits in front of a real model server (llama-server on 127.0.0.1) and forwards every
request unchanged, streaming answers back as they arrive. Test knobs:

- ``require_key``: answer 401 (OpenAI-style error body) unless the request carries
  ``Authorization: Bearer <key>`` — llama-server's own ``--api-key`` does the same; the proxy
  lets a test also see what headers arrived;
- ``cut_streams`` / ``cut_after_events``: the next N streamed answers are cut (socket shut
  down, no final event) after that many Server-Sent Events: a connection dropped mid-reply;
- ``requests``: (method, path, headers, JSON body) of everything received, for assertions.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class ForwardingProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, require_key: str | None = None):
        self.upstream = (upstream_host, upstream_port)
        self.require_key = require_key
        self.cut_streams = 0
        self.cut_after_events = 3
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cut_streams > 0:
                self.cut_streams -= 1
                return True
            return False

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k: v for k, v in h.headers.items()}
        self.requests.append((method, h.path, headers, body))
        if self.require_key is not None and (
            h.headers.get("Authorization") != f"Bearer {self.require_key}"
        ):
            data = json.dumps(
                {"error": {"code": 401, "message": "Invalid API Key", "type": "auth"}}
            ).encode()
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        up = http.client.HTTPConnection(*self.upstream, timeout=600)
        fwd = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        up.request(method, h.path, body=raw, headers=fwd)
        resp = up.getresponse()
        streaming = "text/event-stream" in (resp.getheader("Content-Type") or "")
        cut = streaming and self._take_cut()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                h.send_header(k, v)
        if not streaming:
            data = resp.read()
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            up.close()
            return
        h.end_headers()
        events = 0
        try:
            while True:
                line = resp.readline()
                if not line:
                    break
                h.wfile.write(line)
                h.wfile.flush()
                if line.strip() == b"" and cut:
                    events += 1
                    if events >= self.cut_after_events:
                        with contextlib.suppress(OSError):
                            h.connection.shutdown(socket.SHUT_RDWR)
                        break
        except OSError:
            pass  # the client went away (e.g. it cancelled): closing upstream stops the server
        finally:
            up.close()
