"""The Python client (clients/python, installed with ``pip install ./clients/python``) against a
real Lever: gunicorn on loopback with a temporary SQLite database."""
from __future__ import annotations

import ast
import http.client
import json
import logging
import math
import statistics
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from lever_client import (CIRCUIT_OPEN, CONNECTION_ERROR, INVALID_INPUT, REJECTED, TIMEOUT, Assignment, Lever,
                          LeverError)

from .client_server import FaultProxy, silent_port
from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .servers import ROOT, gunicorn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENV = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": ""}
CLIENT = ROOT / "clients" / "python"
PAYLOADS = {"control": {"headline": "A"}, "b": {"headline": "B"}}


def create(base: str, key: str, **overrides) -> None:
    response = requests.post(f"{base}/api/v1/experiments", json=experiment_body(key, **overrides), headers=ADMIN,
                             timeout=10)
    assert response.status_code == 201, response.text


def visitor_rewards(base: str, visitor: str) -> list[dict]:
    body = requests.get(f"{base}/api/v1/visitors/{visitor}", headers=ADMIN, timeout=10).json()
    return [reward for assignment in body["assignments"] for reward in assignment["rewards"]]


def conversions(base: str, key: str) -> int:
    body = requests.get(f"{base}/api/v1/experiments/{key}/stats", headers=ADMIN, timeout=10).json()
    return sum(variant["conversions_total"] for variant in body["variants"])


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def lever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("client") / "lever.db"
    with gunicorn(f"sqlite:///{path}", workers=1, env=ENV) as base:
        create(base, "hero")
        create(base, "banner", mode="ab")
        create(base, "basket", reward="numeric")
        yield base


@pytest.fixture
def client(lever: str) -> Iterator[Lever]:
    with Lever(lever, ADMIN_TOKEN, timeout=2.0) as lever_client:  # roomy: two cores shared with other jobs
        yield lever_client


# -- the package --------------------------------------------------------------------------------

def test_the_package_has_no_dependencies_and_imports_only_the_standard_library():
    assert metadata.requires("lever-client") is None  # installed, and with no dependencies
    assert (CLIENT / "lever_client" / "py.typed").exists()
    for module in (CLIENT / "lever_client").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= set(sys.stdlib_module_names) | {"__future__"}, (module.name, roots)


# -- assign -------------------------------------------------------------------------------------

def test_assign_returns_a_real_variant_with_token_and_propensity(lever, client):
    first = client.assign("hero", "v-assign", {"device": "mobile"})
    assert first.fallback is False and first.reason is None
    assert first.variant in PAYLOADS and first.payload == PAYLOADS[first.variant]
    assert first.token and 0 < first.propensity <= 1 and first.model_version is not None
    again = client.assign("hero", "v-assign", {"device": "mobile"})
    assert (again.token, again.variant, again.sticky) == (first.token, first.variant, True)
    stored = requests.get(f"{lever}/api/v1/visitors/v-assign", headers=ADMIN, timeout=10).json()["assignments"]
    assert [(a["experiment"], a["variant"], a["propensity"]) for a in stored] == [
        ("hero", first.variant, pytest.approx(first.propensity))]
    wait_until(lambda: client.control("hero") == "control")  # learnt from the definition (admin key)


def test_assign_many_returns_each_experiment_in_the_order_asked(client):
    answers = client.assign_many(["banner", "hero"], "v-many", {"device": "desktop"})
    assert list(answers) == ["banner", "hero"]
    assert all(not a.fallback and a.token and a.variant in PAYLOADS for a in answers.values())
    assert answers["hero"].token == client.assign("hero", "v-many").token  # one stored assignment each


def test_a_refused_assign_falls_back_without_raising_and_logs_once(client, caplog):
    client.assign("hero", "v-x")
    wait_until(lambda: client.control("hero") == "control")
    with caplog.at_level(logging.WARNING, logger="lever_client"):
        answers = [client.assign("no-such", f"v{i}", default="b") for i in range(3)]
        many = client.assign_many(["hero", "no-such"], "v-x", defaults={"no-such": "b"})
        bad_context = client.assign("hero", "v-x", {"price": math.nan}, default="b")
    assert {(a.variant, a.fallback, a.reason) for a in answers} == {("b", True, REJECTED)}
    assert (many["no-such"].variant, many["no-such"].reason) == ("b", REJECTED)
    assert many["hero"].fallback and many["hero"].variant == "control"  # the whole batch failed; control known
    assert (bad_context.variant, bad_context.reason) == ("control", INVALID_INPUT)
    refusals = [r for r in caplog.records if "experiment_not_found" in r.getMessage()]
    assert len(refusals) == 1


def test_assign_gives_up_at_the_timeout_when_lever_does_not_answer():
    with silent_port() as base, Lever(base, timeout=0.3) as client:
        start = time.monotonic()
        answer = client.assign("hero", "v1", default="control")
        elapsed = time.monotonic() - start
    assert (answer.variant, answer.fallback, answer.reason) == ("control", True, TIMEOUT)
    assert 0.25 < elapsed < 0.3 + 0.2


# -- reward -----------------------------------------------------------------------------------

def test_reward_by_token_and_by_visitor(lever, client):
    before = conversions(lever, "hero")
    by_token = client.assign("hero", "v-reward-1")
    client.assign("hero", "v-reward-2")
    assert client.reward(by_token) is not None
    event_id = client.reward("v-reward-2", experiment="hero", event_id="order-1")
    assert event_id == "order-1"
    basket = client.assign("basket", "v-reward-3")
    client.reward(basket.token, 12.5, "order-2")  # the token string works too
    assert client.flush(5)
    assert client.stats().sent == 3 and client.stats().rejected == 0
    assert conversions(lever, "hero") == before + 2
    assert [(r["value"], r["event_id"]) for r in visitor_rewards(lever, "v-reward-3")] == [(12.5, "order-2")]
    assert len(visitor_rewards(lever, "v-reward-1")[0]["event_id"]) == 32  # a uuid the client made up


def test_reward_checks_its_arguments_and_counts_what_lever_refuses(client):
    for call in (lambda: client.reward("tok", math.nan), lambda: client.reward("tok", True),
                 lambda: client.reward("tok", 1, "x" * 129), lambda: client.reward("v", experiment="Not A Key"),
                 lambda: client.reward(""), lambda: client.track("v", ""), lambda: client.track("v", "buy", math.inf)):
        with pytest.raises(LeverError) as raised:
            call()
        assert raised.value.code == "invalid_request"
    assert client.reward(Assignment("hero", "v", "control", fallback=True)) is None  # nothing to credit
    client.reward("forged.token")
    assert client.flush(5)
    assert (client.stats().rejected, client.stats().sent) == (1, 0)


def test_the_queue_flushes_by_size_and_by_time(lever):
    with Lever(lever, ADMIN_TOKEN, timeout=2.0, flush_at=5, flush_interval=60) as by_size:
        tokens = [by_size.assign("hero", f"v-size-{i}").token for i in range(5)]
        for token in tokens[:4]:
            by_size.reward(token)
        time.sleep(0.3)
        assert (by_size.stats().queued, by_size.stats().sent) == (4, 0)
        by_size.reward(tokens[4])
        wait_until(lambda: by_size.stats().sent == 5, timeout=3)
    with Lever(lever, ADMIN_TOKEN, timeout=2.0, flush_at=1000, flush_interval=0.3) as by_time:
        tokens = [by_time.assign("hero", f"v-time-{i}").token for i in range(3)]
        start = time.monotonic()
        for token in tokens:
            by_time.reward(token)
        assert by_time.stats().queued == 3
        wait_until(lambda: by_time.stats().sent == 3, timeout=3)
        assert time.monotonic() - start >= 0.29


def test_a_retried_reward_is_counted_once(lever):
    with FaultProxy(lever) as proxy, Lever(proxy.url, ADMIN_TOKEN, timeout=2.0) as client:
        hero = client.assign("hero", "v-retry-1")
        basket = client.assign("basket", "v-retry-2")
        before = conversions(lever, "hero")
        proxy.fail_next("/api/v1/reward", status=503, count=2)  # Lever never sees these two
        client.reward(hero)
        assert client.flush(10)
        proxy.lose_next("/api/v1/reward")  # Lever records it, the answer is lost: the client repeats it
        client.reward(basket, 7.5)
        assert client.flush(10)
        stats = client.stats()
    assert proxy.arrived["/api/v1/reward"] == 3 + 2
    assert (stats.sent, stats.duplicates, stats.failed) == (2, 1, 0)
    assert conversions(lever, "hero") == before + 1
    assert [r["value"] for r in visitor_rewards(lever, "v-retry-2")] == [7.5]  # summed once, not 15


# -- track (POST /api/v1/events) -------------------------------------------------------------------

def test_track_sends_events_in_batches_and_retries_are_harmless(lever):
    probe = requests.post(f"{lever}/api/v1/events", json={"visitor": "v-probe", "events": []}, headers=ADMIN,
                          timeout=10)
    if probe.status_code == 404:
        pytest.skip("this Lever has no POST /api/v1/events yet")
    with FaultProxy(lever) as proxy, Lever(proxy.url, ADMIN_TOKEN, timeout=2.0, flush_at=500,
                                           flush_interval=60) as client:
        client.assign("hero", "v-track-1")
        ids = [client.track("v-track-1", "purchase", 49.9, f"order-t{i}", ts=time.time()) for i in range(150)]
        client.track("v-track-2", "signup")
        proxy.lose_next("/api/v1/events")
        assert client.flush(10)
        client.track("v-track-1", "purchase", 49.9, ids[0])  # the same event id again
        assert client.flush(10)
        stats = client.stats()
    assert (stats.sent, stats.rejected, stats.failed) == (152, 0, 0)
    assert stats.duplicates == 100 + 1  # the lost request's events, repeated, and the repeated event id
    # one batch at flush(): v-track-1's 150 events in 100 + 50, v-track-2's in 1, the lost one again; then 1
    assert proxy.arrived["/api/v1/events"] == 2 + 1 + 1 + 1


# -- Lever down -------------------------------------------------------------------------------

def test_fallback_when_lever_is_stopped_is_fast_uses_the_control_and_logs_once(tmp_path, caplog):
    with gunicorn(f"sqlite:///{tmp_path / 'down.db'}", workers=1, env=ENV) as base:
        create(base, "hero")
        client = Lever(base, ADMIN_TOKEN, timeout=0.5, flush_at=5, max_queue=10)
        live = client.assign("hero", "v-down")
        assert not live.fallback
        assert client.control("hero") == "control"  # named by the assign response itself
        wait_until(lambda: client.control_payload("hero") == PAYLOADS["control"])  # looked up with the key
    with caplog.at_level(logging.WARNING, logger="lever_client"):
        answers, durations = [], []
        for i in range(20):
            start = time.monotonic()
            answers.append((client.assign("hero", f"w{i}", default="b"), client.assign("unseen", f"w{i}", default="b")))
            durations.append(time.monotonic() - start)
        for _ in range(30):
            client.reward(live)
        stats = client.stats()
        assert client.close(timeout=0.3) is False
    assert max(durations) < 2 * client.timeout  # refused at once on loopback, then not even tried
    hero, unseen = answers[0]
    assert (hero.variant, hero.payload, hero.fallback, hero.reason) == ("control", PAYLOADS["control"], True,
                                                                        CONNECTION_ERROR)
    assert (unseen.variant, unseen.payload, unseen.fallback) == ("b", None, True)
    assert all(h.variant == "control" and u.variant == "b" and h.fallback and u.fallback for h, u in answers)
    assert answers[-1][0].reason == CIRCUIT_OPEN and hero.token is None and hero.propensity is None
    assign_warnings = [r for r in caplog.records if "assign falls back" in r.getMessage()]
    assert len(assign_warnings) == 1
    assert stats.dropped >= 30 - 2 * 10  # the queue holds 10, the sender has taken at most one batch
    assert client.stats().dropped == 30 and client.stats().sent == 0  # close gave up on the rest
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1


def test_a_client_without_a_key_learns_the_control_from_the_assign_response(lever):
    client = Lever(lever, None)
    live = client.assign("hero", "v-keyless")
    assert not live.fallback and live.control == "control" and client.control("hero") == "control"
    client.close()


def test_close_is_idempotent_and_the_interpreter_exit_flushes(lever):
    client = Lever(lever, ADMIN_TOKEN)
    client.close()
    assert client.close() is True
    before = conversions(lever, "hero")
    script = textwrap.dedent(f"""
        from lever_client import Lever
        client = Lever({lever!r}, {ADMIN_TOKEN!r}, flush_interval=60)
        client.reward(client.assign("hero", "v-exit"))
        assert client.stats().queued == 1
    """)  # no flush, no close: the atexit hook sends it
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert conversions(lever, "hero") == before + 1


# -- overhead -----------------------------------------------------------------------------------

def test_client_overhead_per_assign_is_small(lever, client):
    host, port = lever.removeprefix("http://").split(":")
    raw = http.client.HTTPConnection(host, int(port), timeout=5)

    def raw_assign(visitor: str) -> None:
        raw.request("POST", "/api/v1/assign", body=json.dumps({"experiment": "hero", "visitor": visitor}),
                    headers={"Content-Type": "application/json"})
        answer = raw.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["variant"]

    wall: dict[str, list[float]] = {"raw": [], "client": []}
    cpu: dict[str, list[float]] = {"raw": [], "client": []}  # this thread's CPU: the client's own work
    calls = {"raw": raw_assign, "client": lambda visitor: client.assign("hero", visitor)}
    for i in range(200):  # interleaved, so that load from elsewhere on the machine hits both alike
        for name, call in calls.items():
            start_wall, start_cpu = time.perf_counter(), time.thread_time()
            call(f"overhead-{name}-{i}")
            cpu[name].append(time.thread_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    raw.close()
    ms = {f"{kind}_{name}": statistics.median(values[name]) * 1000 for kind, values in (("wall", wall), ("cpu", cpu))
          for name in calls}
    paired = statistics.median(c - r for c, r in zip(wall["client"], wall["raw"])) * 1000
    print(f"\nassign, medians of 200 on loopback: wall raw http.client {ms['wall_raw']:.3f} ms, lever_client "
          f"{ms['wall_client']:.3f} ms (paired difference {paired:+.3f} ms); caller-thread CPU raw "
          f"{ms['cpu_raw']:.3f} ms, lever_client {ms['cpu_client']:.3f} ms")
    assert client.assign("hero", "overhead-check").token  # the client really did assign
    assert ms["cpu_client"] < ms["cpu_raw"] + 0.5
    assert paired < 2.0
