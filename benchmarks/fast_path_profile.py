"""In-process cost of one assign through the fast path and through Flask, and where the
fast path's time goes: the app's WSGI callable called with the environ a server would build
(no sockets, no test client), a fresh SQLite file per round, new visitors.

    .venv/bin/python benchmarks/fast_path_profile.py [--requests 3000] [--rounds 5] [--profile]

Prints the median µs per assign (wall clock, one thread; group commit on, as in production)
for ``LEVER_FAST_PATH`` on and off, and with ``--profile`` a cProfile of the fast path's
assigns: the functions with the most own time, and the shares of the request's parts.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from app import create_app

ADMIN = "bench-admin-token-0123456789abcdef0123456789"

#: cProfile inclusive-time groups: (label, function names as pstats keys them (file suffix, name))
PARTS = (
    ("body parsing and validation (parse_json, parse_assign)", (("web/http.py", "parse_json"),
                                                                 ("domain/requests.py", "parse_assign"))),
    ("decision (_choose: holdout, Thompson draw, context)", (("service/decisions.py", "_choose"),)),
    ("sticky lookup (find_sticky_assignment)", (("", "find_sticky_assignment"),)),
    ("the write (record_assignments, group commit)", (("", "record_assignments"),)),
    ("policy cache (cache.get)", (("service/policy_cache.py", "get"),)),
    ("token signing (sign, sign_visitor)", (("service/tokens.py", "sign"), ("service/tokens.py", "sign_visitor"))),
    ("response JSON (json dumps)", (("web/factory.py", "dumps"),)),
    ("rate limit (RateLimits.hit)", (("web/limits.py", "hit"),)),
)


def environ_for(body: bytes) -> dict:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/assign", "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "wrk", "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(), "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0), "wsgi.input_terminated": True}


def _start_response(status: str, headers: list, exc_info=None) -> None:
    if not status.startswith("200"):
        raise AssertionError(status)


def make(directory: Path, index: int, fast: bool, group_commit: bool) -> Callable:
    # a rate limit no run reaches: the production path counts every request
    app = create_app({"DATABASE_URL": f"sqlite:///{directory / f'p-{index}-{fast}.db'}", "LEVER_ADMIN_TOKEN": ADMIN,
                      "LEVER_SECRET_KEY": ADMIN, "LEVER_RATE_LIMIT": "100000/second", "LEVER_FAST_PATH": fast,
                      "LEVER_GROUP_COMMIT": group_commit})
    body = {"key": "bench", "mode": "bandit", "variants": ["control", "b", "c"]}
    assert app.test_client().post("/api/v1/experiments", json=body,
                                  headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 201
    return app


def run(app: Callable, requests: int, offset: int = 0) -> float:
    bodies = [json.dumps({"experiment": "bench", "visitor": f"v{offset + i}"}).encode() for i in range(requests)]
    started = time.perf_counter()
    for body in bodies:
        b"".join(app(environ_for(body), _start_response))
    return (time.perf_counter() - started) / requests * 1e6


def profile(app: Callable, requests: int) -> None:
    run(app, 200, offset=10_000_000)  # warm: policy loaded, statements prepared
    profiler = cProfile.Profile()
    profiler.enable()
    run(app, requests, offset=20_000_000)
    profiler.disable()
    stats = pstats.Stats(profiler)
    top = max(stats.stats.items(), key=lambda item: item[1][3])  # the run() frame: everything
    whole = top[1][3]
    print(f"\ncProfile, {requests} assigns through the fast path (inclusive time, share of run()):")
    for label, names in PARTS:
        seconds = sum(row[3] for (path, _line, name), row in stats.stats.items()
                      if any(path.endswith(suffix) and name == want for suffix, want in names))
        print(f"  {seconds / whole:6.1%}  {label}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-group-commit", action="store_true",
                        help="LEVER_GROUP_COMMIT=false: the write in the request thread (its CPU, not a hand-off wait)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times: dict[bool, list[float]] = {True: [], False: []}
        for index in range(args.rounds):
            for fast in (True, False):  # alternating: the machine's load hits both alike
                app = make(Path(tmp), index, fast, not args.no_group_commit)
                run(app, 200, offset=10_000_000)
                times[fast].append(run(app, args.requests))
                app.extensions["lever.storage"].close()
        fast_us, flask_us = statistics.median(times[True]), statistics.median(times[False])
        print(f"assign, {args.requests} new visitors x {args.rounds} rounds (median µs/request, wall clock): "
              f"fast path {fast_us:.0f}, Flask {flask_us:.0f} ({1 - fast_us / flask_us:.0%} less)")
        if args.profile:
            app = make(Path(tmp), args.rounds, True, not args.no_group_commit)
            profile(app, args.requests)
            app.extensions["lever.storage"].close()


if __name__ == "__main__":
    main()
