"""Real gunicorn on loopback for tests: start, wait until healthy, stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerURL(str):
    """The base URL, carrying the gunicorn master's pid for fault tests."""

    master_pid: int = 0

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.master_pid}/task/{self.master_pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def wait_for_workers(base: str, process: subprocess.Popen, workers: int, timeout_s: float = 60) -> None:
    """Until ``workers`` distinct worker pids have answered /healthz (all booted)."""
    deadline = time.monotonic() + timeout_s
    seen: set[int] = set()

    def probe(_: int) -> int | None:
        try:
            response = requests.get(f"{base}/healthz", timeout=5)
            return response.json()["worker"] if response.status_code == 200 else None
        except (requests.ConnectionError, requests.Timeout):
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(seen) < workers:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(seen)} of {workers} gunicorn workers answered in {timeout_s} s")
            seen.update(pid for pid in pool.map(probe, range(16)) if pid)
            time.sleep(0.05)


@contextmanager
def gunicorn(database_url: str, workers: int = 2, env: dict[str, str] | None = None,
             log_path: Path | None = None, app: str = "app:create_app()") -> Iterator[str]:
    """Serve ``app`` (Lever's by default) with gunicorn on a free loopback port; yields the base URL."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEVER_")}
    environment.update({"DATABASE_URL": database_url, "WEB_CONCURRENCY": str(workers), **(env or {})})
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
         "--bind", f"127.0.0.1:{port}", app],
        cwd=ROOT, env=environment, stdout=log, stderr=log, start_new_session=True,
    )
    base = ServerURL(f"http://127.0.0.1:{port}")
    base.master_pid = process.pid
    try:
        wait_for_workers(base, process, workers)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log_path:
            log.close()
