"""Lever's gunicorn worker: gunicorn's threaded worker with every client read bounded.

With threads, a slow client ties up one thread instead of a whole worker, but gunicorn's
gthread worker still reads a request with a blocking socket and no timeout: a client that
announces ``Content-Length: 1000`` and sends less holds its thread until it gives up, and
``threads`` such clients hold the worker. Here

* every read and write on a client socket times out after ``SOCKET_TIMEOUT_S`` (the
  request line and headers of a slowloris, a client that stops reading its answer);
* the body is read *before* the application runs, with one deadline for all of it
  (``BODY_TIMEOUT_S``): a client that trickles a byte at a time under the socket timeout
  still cannot keep the thread longer. Past the deadline the answer is ``408`` JSON and the
  connection closes. Bodies larger than ``BUFFER_LIMIT_BYTES`` are not buffered (the
  application refuses them by Content-Length before reading: ``LEVER_MAX_BODY_BYTES``).

So the application always gets a complete body from memory, the way it would behind a
buffering proxy (Heroku's router, nginx). A body that came in with the headers (an assign's
hundred bytes almost always does) is taken from the parser's buffer without touching the
socket. The ``Date`` header is formatted once per second, not once per response (gunicorn's
``http_date`` runs ``email.utils.formatdate`` for every answer: ~2% of an assign's time). Used by ``gunicorn.conf.py``
(``worker_class = "app.web.worker.BoundedThreadWorker"``).
"""
from __future__ import annotations

import email.utils
import errno
import io
import json
import os
import socket
import time

from gunicorn import util as gunicorn_util
from gunicorn.workers.gthread import TConn, ThreadWorker

#: seconds any single read or write on a client socket may block
SOCKET_TIMEOUT_S = float(os.environ.get("GUNICORN_SOCKET_TIMEOUT", "10"))
#: seconds a whole request body may take to arrive
BODY_TIMEOUT_S = float(os.environ.get("GUNICORN_BODY_TIMEOUT", "5"))
#: larger bodies are left to the application (which refuses them unread)
BUFFER_LIMIT_BYTES = 1 << 20

_TIMEOUT_BODY = json.dumps({"error": {"code": "request_timeout",
                                      "message": f"the request body did not arrive within {BODY_TIMEOUT_S:g} s"}})
_TIMEOUT_RESPONSE = (
    "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    f"Content-Length: {len(_TIMEOUT_BODY)}\r\n\r\n{_TIMEOUT_BODY}"
).encode()


_gunicorn_http_date = gunicorn_util.http_date
_date: tuple[int, str] = (0, "")  # (second, its header value): replaced whole, so threads read it safely


def http_date(timestamp: float | None = None) -> str:
    """gunicorn's ``http_date``, the current second's value formatted once (the header has
    whole seconds: the same text as formatting every time)."""
    global _date
    if timestamp is not None:
        return _gunicorn_http_date(timestamp)
    second = int(time.time())
    if _date[0] != second:
        _date = (second, email.utils.formatdate(second, localtime=False, usegmt=True))
    return _date[1]


def buffered_bytes(unreader) -> int:
    """How many bytes the request parser has read ahead of what it handed out."""
    return unreader.buf.seek(0, os.SEEK_END)


class BoundedConn(TConn):
    def init(self) -> None:
        """Called on every request of the connection, after the worker made its socket blocking
        (without a timeout): give it one again."""
        super().init()
        self.sock.settimeout(SOCKET_TIMEOUT_S)


class _BodyTimeout(Exception):
    pass


def _announced_length(headers: list[tuple[str, str]]) -> int | None:
    """Content-Length when the body is not chunked (None: chunked or unknown)."""
    length = None
    for name, value in headers:
        if name == "TRANSFER-ENCODING":
            return None
        if name == "CONTENT-LENGTH":
            try:
                length = int(value)
            except ValueError:
                return None
    return length


def read_body(body: io.RawIOBase, unreader, sock, deadline: float, limit: int) -> bytes | None:
    """The whole body by ``deadline`` (``_BodyTimeout`` if not), or None past ``limit`` bytes
    (what was read is then lost: only called when the announced length is within the limit).

    gunicorn's body reader loops over ``recv`` until it has what it was asked for, so the
    deadline is applied to every ``recv`` (through the parser's unreader): a byte every so
    often cannot stretch it."""
    original = unreader.chunk

    def chunk(*args):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _BodyTimeout()
        sock.settimeout(min(remaining, SOCKET_TIMEOUT_S))
        try:
            return original(*args)
        except TimeoutError as error:
            raise _BodyTimeout() from error

    unreader.chunk = chunk
    chunks, total = [], 0
    try:
        while data := body.read(65536):
            chunks.append(data)
            total += len(data)
            if total > limit:
                return None
        return b"".join(chunks)
    finally:
        del unreader.chunk  # the class's method again
        sock.settimeout(SOCKET_TIMEOUT_S)


class BoundedThreadWorker(ThreadWorker):
    """gthread with bounded client reads (see the module docstring)."""

    def init_process(self) -> None:
        gunicorn_util.http_date = http_date  # this worker process's responses (gunicorn.http.wsgi calls it)
        super().init_process()

    def accept(self, listener) -> None:  # gunicorn's accept, with BoundedConn
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            self.enqueue_req(BoundedConn(self.cfg, client_sock, client_addr, listener.getsockname()))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    @staticmethod
    def _answer_and_close(conn: BoundedConn, response: bytes) -> None:
        """Send ``response`` and close here, in the request's thread: gunicorn's graceful close
        runs on the worker's main loop and lingers up to 2 s for the client, which a stalled
        client would make it do while nothing else is accepted."""
        sock = conn.sock
        try:
            sock.sendall(response)
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 0.3  # what the client still sends, briefly, so the close is not a reset
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                if not sock.recv(65536):
                    break
        except OSError:
            pass
        finally:
            sock.close()
            conn.closed_here = True

    def finish_request(self, conn, fs) -> None:
        if getattr(conn, "closed_here", False):
            self.nr_conns -= 1
            return
        super().finish_request(conn, fs)

    def handle_request(self, req, conn) -> bool:
        length = _announced_length(req.headers)
        if req.body is not None and length is not None and 0 < length <= buffered_bytes(conn.parser.unreader):
            req.body = io.BytesIO(req.body.read(length))  # all here already: no socket read, no deadline needed
        elif req.body is not None and length is not None and 0 < length <= BUFFER_LIMIT_BYTES:
            try:
                data = read_body(req.body, conn.parser.unreader, conn.sock, time.monotonic() + BODY_TIMEOUT_S,
                                 BUFFER_LIMIT_BYTES)
            except _BodyTimeout:
                self.log.warning("request body from %s did not arrive within %g s: 408", conn.client, BODY_TIMEOUT_S)
                self._answer_and_close(conn, _TIMEOUT_RESPONSE)
                return False
            if data is None:
                return False
            req.body = io.BytesIO(data)
        return super().handle_request(req, conn)
