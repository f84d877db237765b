"""Loopback helpers for the Python client's tests: an HTTP proxy in front of a real Lever that
injects faults on request, and a port that accepts connections but never answers."""
from __future__ import annotations

import http.client
import socket
import threading
from collections import Counter, deque
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Deque, Iterator
from urllib.parse import urlsplit

FAIL = "fail"  # answer the status without forwarding (Lever never sees the request)
LOSE = "lose"  # forward, then drop the connection: Lever recorded it, the client saw no answer


class FaultProxy:
    """Forwards every request to ``upstream``; ``fail_next`` and ``lose_next`` queue faults
    for the next requests to one path. ``arrived[path]`` counts the requests that came in."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self._upstream = (target.hostname, target.port)
        self._faults: dict[str, Deque[tuple[str, int]]] = {}
        self._lock = threading.Lock()
        self.arrived: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, path: str, status: int = 503, count: int = 1) -> None:
        with self._lock:
            self._faults.setdefault(path, deque()).extend([(FAIL, status)] * count)

    def lose_next(self, path: str, count: int = 1) -> None:
        with self._lock:
            self._faults.setdefault(path, deque()).extend([(LOSE, 0)] * count)

    def _take(self, path: str) -> tuple[str, int] | None:
        with self._lock:
            self.arrived[path] += 1
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive towards the client

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._take(self.path)
                if fault and fault[0] == FAIL:
                    self._answer(fault[1], b'{"error": {"code": "injected", "message": "fault proxy"}}')
                    return
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                if fault:  # LOSE: Lever has done the work; the answer never reaches the client
                    self.close_connection = True
                    return
                self._answer(answer.status, data)

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _relay

        return Handler

    def __enter__(self) -> "FaultProxy":
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def silent_port() -> Iterator[str]:
    """A base URL whose port completes the TCP handshake (the kernel's backlog) but never
    answers: the client's timeout is all that ends a request."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
