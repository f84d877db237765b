"""HTTP to Lever with the standard library: one keep-alive connection per thread, a deadline
per request, JSON in and out. No retries here: the caller decides what is safe to repeat."""
from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union
from urllib.parse import urlsplit

from .models import CONNECTION_ERROR, TIMEOUT, LeverError

USER_AGENT = "lever-client-python/0.1.0"
Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]


class Unreachable(Exception):
    """No HTTP answer: ``kind`` is ``timeout`` or ``connection_error``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # the decoded JSON, or None when the answer was not JSON

    @property
    def retryable(self) -> bool:
        """Worth repeating (when the request is idempotent): overload, busy database, timeout."""
        return self.status >= 500 or self.status in (408, 429)

    def error(self) -> LeverError:
        detail = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(detail, dict):
            return LeverError(str(detail.get("code", "http_error")), str(detail.get("message", "")), self.status)
        return LeverError("http_error", f"HTTP {self.status}", self.status)


def encode(body: Any) -> bytes:
    """Strict JSON (Lever refuses NaN and Infinity); raises LeverError on what cannot be sent."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as error:
        raise LeverError("invalid_input", str(error)) from None


def _stale(connection: Connection) -> bool:
    """An idle keep-alive socket that is readable has been closed by the server (or sent
    garbage): reconnect before writing, so a non-idempotent request is never sent into it."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class Transport:
    """Thread-safe: every thread has its own connection to the one Lever base URL."""

    def __init__(self, base_url: str, api_key: Optional[str], timeout: float) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LeverError("invalid_base_url", f"base_url must be http(s)://host[:port], not {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": USER_AGENT}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        # for close(); weak, so that the connection of a thread that has ended goes with it
        self._all: weakref.WeakSet[Connection] = weakref.WeakSet()

    def _connection(self, timeout: float) -> Connection:
        connection: Optional[Connection] = getattr(self._local, "connection", None)
        if connection is not None and _stale(connection):
            connection.close()
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=timeout)
            self._local.connection = connection
            with self._lock:
                self._all.add(connection)
        connection.timeout = timeout  # used by the next connect()
        return connection

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                timeout: Optional[float] = None) -> Response:
        """One request within ``timeout`` seconds (connect, send and answer); raises Unreachable."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        connection = self._connection(budget)
        headers: Mapping[str, str] = self._headers
        try:
            connection.request(method, self._prefix + path, body=body, headers=headers)
            if connection.sock is not None:  # the connect took part of the budget
                connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            answer = connection.getresponse()
            data = answer.read()
            status = answer.status
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            kind = TIMEOUT if isinstance(error, socket.timeout) else CONNECTION_ERROR
            raise Unreachable(kind, f"{method} {path}: {error!r}") from None
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = None
        return Response(status, decoded)

    def after_fork(self) -> None:
        """Forget the parent's sockets (closing them here would not affect the parent)."""
        self._lock = threading.Lock()
        self._all = weakref.WeakSet()
        self._local = threading.local()

    def close(self) -> None:
        with self._lock:
            connections, self._all = list(self._all), weakref.WeakSet()
            self._local = threading.local()  # a later request opens (and registers) a new one
        for connection in connections:
            connection.close()
