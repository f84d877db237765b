"""Slow clients on a real gunicorn in Lever's default configuration (gunicorn.conf.py: 2 threaded
workers with bounded client reads): connections that announce a body and send less, or trickle
it, hold one thread each for at most the body timeout, and meanwhile /healthz and assign answer
within a second. Loopback only, bounded in count and time."""
from __future__ import annotations

import json
import socket
import time

import requests

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .servers import gunicorn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY_TIMEOUT_S = 2
ENV = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": "",
       "GUNICORN_BODY_TIMEOUT": str(BODY_TIMEOUT_S)}
SLOW_CONNECTIONS = 6


def _slow_body(base: str, announced: int = 1000, sent: bytes = b'{"experiment": "he') -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST /api/v1/assign HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {announced}\r\n\r\n".encode() + sent)
    return sock


def _answer(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_slow_bodies_do_not_stall_healthz_or_assign(tmp_path):
    with gunicorn(f"sqlite:///{tmp_path / 'lever.db'}", workers=2, env=ENV) as base:
        assert requests.post(f"{base}/api/v1/experiments", json=experiment_body(), headers=ADMIN,
                             timeout=10).status_code == 201
        opened = time.monotonic()
        slow = [_slow_body(base) for _ in range(SLOW_CONNECTIONS)]
        try:
            time.sleep(0.3)  # the slow requests have reached their threads
            for i in range(10):  # new connections each time: either worker may take them
                started = time.monotonic()
                assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
                response = requests.post(f"{base}/api/v1/assign", json={"experiment": "hero", "visitor": f"v{i}"},
                                         timeout=5)
                assert response.status_code == 200
                assert time.monotonic() - started < 1.0
            # each slow request is answered 408 once its body deadline passes, and closed
            for sock in slow:
                answer = _answer(sock)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408"), answer[:200]
                assert json.loads(body)["error"]["code"] == "request_timeout"
            assert time.monotonic() - opened < BODY_TIMEOUT_S + 3
        finally:
            for sock in slow:
                sock.close()


def test_a_trickled_body_is_cut_at_the_body_deadline(tmp_path):
    """One byte every 0.4 s never trips a per-read timeout; the whole-body deadline still ends it
    (a 408, or a reset when the client's next byte lands after the server closed: either way
    the thread is free again)."""
    with gunicorn(f"sqlite:///{tmp_path / 'lever.db'}", workers=1, env=ENV) as base:
        sock = _slow_body(base, announced=100, sent=b"{")
        started = time.monotonic()
        try:
            sock.settimeout(0.4)
            answer, reset = b"", False
            while time.monotonic() - started < BODY_TIMEOUT_S + 3:
                try:
                    answer = sock.recv(65536)
                    break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    reset = True
                    break
                try:
                    sock.sendall(b" ")
                except OSError:
                    reset = True
                    break
            ended = time.monotonic() - started
            assert reset or answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert BODY_TIMEOUT_S - 0.5 < ended < BODY_TIMEOUT_S + 2
        finally:
            sock.close()
