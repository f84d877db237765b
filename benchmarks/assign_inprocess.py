"""In-process cost of one assign and one reward through the whole Flask app (no network):
the per-request work of Lever's own code, without gunicorn or the kernel in the way.

    .venv/bin/python benchmarks/assign_inprocess.py [--requests 3000] [--rounds 5] [--mode bandit|ab|contextual]

A fresh SQLite file per round; each round times ``--requests`` assigns of new visitors
(then as many rewards) and reports the median microseconds per request; the script
prints the median over rounds. Run it on two checkouts side by side (alternating) to
compare code versions on a shared machine.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from app import create_app

ADMIN = "bench-admin-token-0123456789abcdef0123456789"
CONTEXT = [{"name": "device", "type": "categorical", "levels": ["mobile", "desktop", "tablet"]},
           {"name": "hour", "type": "cyclic", "period": 24}]


def one_round(requests: int, mode: str, directory: Path, index: int) -> tuple[float, float]:
    app = create_app({"DATABASE_URL": f"sqlite:///{directory / f'bench-{index}.db'}", "LEVER_ADMIN_TOKEN": ADMIN,
                      "LEVER_SECRET_KEY": ADMIN, "LEVER_RATE_LIMIT": "", "TESTING": True})
    client = app.test_client()
    body = {"key": "bench", "mode": mode, "variants": ["control", "b", "c"]}
    if mode == "contextual":
        body["context"] = CONTEXT
    assert client.post("/api/v1/experiments", json=body,
                       headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 201
    tokens = []
    started = time.perf_counter()
    for i in range(requests):
        response = client.post("/api/v1/assign", json={"experiment": "bench", "visitor": f"v{i}",
                                                      "context": {"device": "mobile", "hour": i % 24}})
        tokens.append(response.get_json()["assignment"])
    assign_us = (time.perf_counter() - started) / requests * 1e6
    started = time.perf_counter()
    for token in tokens:
        client.post("/api/v1/reward", json={"assignment": token})
    reward_us = (time.perf_counter() - started) / requests * 1e6
    app.extensions["lever.storage"].close()
    return assign_us, reward_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", default="bandit", choices=("bandit", "ab", "contextual"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [one_round(args.requests, args.mode, Path(tmp), i) for i in range(args.rounds)]
    assign = statistics.median(r[0] for r in results)
    reward = statistics.median(r[1] for r in results)
    print(f"mode={args.mode} requests={args.requests} rounds={args.rounds}: "
          f"assign {assign:.0f} µs, reward {reward:.0f} µs (medians)")


if __name__ == "__main__":
    main()
