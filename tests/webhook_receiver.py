"""A real HTTP receiver on loopback for the webhook tests (http.server in a thread).

It records every POST (arrival time, path, headers, raw body) and answers with the next
status of its script (then ``default_status``); ``delay_s`` slows each answer;
``barrier`` makes the first requests wait for each other (proof that two senders were
in flight at the same time).
"""
from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, statuses: tuple[int, ...] = (), default_status: int = 200, delay_s: float = 0.0,
                 barrier: int = 0) -> None:
        self.script = list(statuses)
        self.default_status = default_status
        self.delay_s = delay_s
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        self.barrier = threading.Barrier(barrier, timeout=90) if barrier else None
        self.barrier_broken = False
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._wait_for_peers()
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with receiver.arrived:
                    status = receiver.script.pop(0) if receiver.script else receiver.default_status
                    receiver.received.append(Received(time.time(), self.path, dict(self.headers.items()), body))
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _wait_for_peers(self) -> None:
        barrier = self.barrier
        if barrier is None:
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            self.barrier_broken = True
        self.barrier = None  # only the first requests meet

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while len(self.received) < count and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
            return list(self.received)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

