"""The webhook worker as deployed: ``flask --app app deliver`` processes against a loopback
receiver. Two ``deliver --once`` at the same time send each event once; the running loop
delivers within its poll interval (latency measured and printed) and stops on SIGTERM."""
from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.service.webhooks import CLAIM_BATCH, new_event

from .conftest import ADMIN_TOKEN, SECRET_KEY
from .test_webhooks import register, stop
from .webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent


def worker_env(database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVER_")}
    env.update({"DATABASE_URL": database_url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY,
                "LEVER_ENV": "test", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **settings})
    return env


def flask(database_url: str, *args: str, **settings: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                            env=worker_env(database_url, **settings), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_deliverers_at_once_send_each_event_once(app, client, admin, database_url):
    events = CLAIM_BATCH + 10  # more than one lease: the second process must find work
    # the first request of each process waits for the other's: both are provably sending at once
    with Receiver(barrier=2, delay_s=0.02) as receiver:
        register(client, admin, receiver.url)
        now = time.time()
        app.extensions["lever.storage"].raise_events(
            [new_event("experiment.stopped", None, f"stopped {i}", {"i": i}, now) for i in range(events)])
        workers = [flask(database_url, "deliver", "--once") for _ in range(2)]
        outputs = [w.communicate(timeout=120)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        got = receiver.wait_for(events)
        assert not receiver.barrier_broken, "the two deliverers never sent at the same time"
    ids = [r.json["id"] for r in got]
    assert len(ids) == events and len(set(ids)) == events, outputs  # each event once, none lost
    attempted = [int(out.split("attempted ")[1].split()[0]) for out in outputs]
    assert sum(attempted) == events and min(attempted) > 0, outputs


@pytest.mark.slow
def test_the_worker_loop_delivers_within_a_second_and_stops_on_sigterm(app, client, admin, make_experiment,
                                                                       database_url):
    samples = 8
    rng = random.Random(5)
    with Receiver() as receiver:
        register(client, admin, receiver.url)
        for i in range(samples):
            make_experiment(f"e{i}")
        worker = flask(database_url, "deliver", LEVER_MONITOR_INTERVAL_S="3600")
        try:
            assert "webhook worker" in worker.stdout.readline()
            latencies = []
            for i in range(samples):
                time.sleep(rng.uniform(0.0, 1.0))  # sample every phase of the 1 s poll
                raised = time.time()
                stop(client, admin, f"e{i}")
                got = receiver.wait_for(i + 1, timeout_s=10)
                assert len(got) == i + 1, "not delivered within 10 s"
                assert got[-1].json["experiment"]["key"] == f"e{i}"
                latencies.append(got[-1].at - raised)
        finally:
            worker.send_signal(signal.SIGTERM)
            output = worker.communicate(timeout=15)[0]
        assert worker.returncode == 0 and "stopped" in output, output
    median = statistics.median(latencies)
    print(f"\nwebhook delivery latency (raised -> received), {samples} events: median {median * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms, all {[round(x * 1000) for x in latencies]}")
    assert median < 1.5 and max(latencies) < 3.0
    assert len({r.json["id"] for r in receiver.received}) == samples  # nothing sent twice
