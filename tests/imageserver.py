"""A real HTTP server on 127.0.0.1 (port 0) for ingest tests and the benchmark.

Routes are registered per path as one :class:`Reply` or a sequence of them (the
last one repeats): ``server.route("/flaky.jpg", Reply(500), Reply(200, body))``.
Every request is logged with its time and headers so tests can assert what was
(and was not) requested. ``latency`` delays every reply, for the benchmark.

    with ImageServer() as server:
        server.route("/a.jpg", Reply(body=jpeg, content_type="image/jpeg"))
        url = server.url("/a.jpg")
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "image/jpeg"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line is sent
    chunked: bool = False  # no Content-Length: the size is only known by streaming


@dataclass(frozen=True)
class Hit:
    path: str
    at: float
    headers: dict[str, str]


class ImageServer:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.routes: dict[str, list[Reply]] = {}
        self.hits: list[Hit] = []
        self._served: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self.active = 0  # requests being answered right now
        self.max_active = 0  # the most ever answered at once (to check concurrency limits)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *replies: Reply) -> str:
        with self._lock:
            self.routes[path] = list(replies)
        return self.url(path)

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for hit in self.hits if hit.path == path)

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [hit.at for hit in self.hits if hit.path == path]

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def _next_reply(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.hits.append(Hit(path, time.monotonic(), headers))
            replies = self.routes.get(path)
            if not replies:
                return Reply(404, b"not found", "text/plain")
            index = min(self._served[path], len(replies) - 1)
            self._served[path] += 1
            return replies[index]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    owner: ImageServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (timeouts, size caps) is expected here, not an error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        owner._enter()
        try:
            reply = owner._next_reply(path, {k.lower(): v for k, v in self.headers.items()})
            delay = reply.delay + owner.latency
            if delay:
                time.sleep(delay)
            with contextlib.suppress(ConnectionError, OSError):
                self._send(reply)
        finally:
            owner._leave()

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(reply.body), 16384):
                piece = reply.body[start : start + 16384]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read ImageServer.hits instead
