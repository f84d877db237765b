"""Webhooks end to end on both backends, against a real HTTP receiver on loopback: the API
(register, list, delete, delivery log, bad input), signatures checked with the README's
snippet, retries on a fake clock, giving up after 24 h, and the sender's failure modes."""
from __future__ import annotations

import http.server
import random
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from app.service.webhooks import (
    FIRST_RETRY_S,
    JITTER,
    MAX_RETRY_S,
    RETRY_WINDOW_S,
    HttpSender,
    deliver_due,
    new_event,
    prune_log,
    verify_signature,
)

from .webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec-test-0123456789abcdef"
ALL_EVENTS = ["guardrail.failing", "srm.detected", "experiment.significant", "experiment.stopped",
              "personalisation.hurting"]


def documented_verifier():
    """The verification snippet as README (or, before the merge, docs-pending) prints it."""
    for path in (ROOT / "README.md", ROOT / "docs-pending" / "webhooks.md"):
        if not path.exists():
            continue
        for block in re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S):
            if "def verify_lever_signature" in block:
                namespace: dict = {}
                exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 — our own documentation
                return namespace["verify_lever_signature"]
    raise AssertionError("no verify_lever_signature snippet in README.md or docs-pending/webhooks.md")


@pytest.fixture
def receiver():
    with Receiver() as receiver:
        yield receiver


def register(client, admin, url: str, events=("experiment.stopped",), **extra) -> dict:
    response = client.post("/api/v1/webhooks", json={"url": url, "events": list(events), "secret": SECRET, **extra},
                           headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def stop(client, admin, key: str, winner: str | None = "b") -> float:
    before = time.time()
    body = {"status": "stopped", **({"winner": winner} if winner else {})}
    assert client.patch(f"/api/v1/experiments/{key}", json=body, headers=admin).status_code == 200
    return before


def deliver(app, clock, rng=None):
    return deliver_due(app.extensions["lever.storage"], HttpSender(frozenset()), clock, "test-worker",
                       rng or random.Random(1))


def log_of(client, admin, webhook_id: int) -> list[dict]:
    response = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=admin)
    assert response.status_code == 200
    return response.get_json()["deliveries"]


# -- the API -------------------------------------------------------------------------------------

def test_register_list_delete_and_the_secret_is_never_shown(client, admin, receiver):
    made = register(client, admin, receiver.url, ALL_EVENTS, format="slack")
    assert made["events"] == sorted(ALL_EVENTS) and made["format"] == "slack"
    assert made["secret_prefix"] == SECRET[:4] + "…"
    listed = client.get("/api/v1/webhooks", headers=admin)
    assert listed.get_json()["webhooks"] == [made]
    assert SECRET not in listed.get_data(as_text=True) and SECRET not in str(made)
    assert client.delete(f"/api/v1/webhooks/{made['id']}", headers=admin).get_json() == {"id": made["id"],
                                                                                           "deleted": True}
    assert client.get("/api/v1/webhooks", headers=admin).get_json() == {"webhooks": []}
    for method, path in (("delete", f"/api/v1/webhooks/{made['id']}"),
                         ("get", f"/api/v1/webhooks/{made['id']}/deliveries"),
                         ("delete", f"/api/v1/webhooks/{2**64}"), ("get", f"/api/v1/webhooks/{2**70}/deliveries"),
                         ("delete", "/api/v1/webhooks/-1"), ("get", "/api/v1/webhooks/x/deliveries"),
                         ("delete", "/api/v1/webhooks/%D9%A3"), ("get", "/api/v1/webhooks/1.5/deliveries")):
        response = getattr(client, method)(path, headers=admin)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "webhook_not_found", path


BAD_BODIES = [
    ({"url": "ftp://127.0.0.1/x", "events": ["srm.detected"], "secret": SECRET}, "http"),
    ({"url": "file:///etc/passwd", "events": ["srm.detected"], "secret": SECRET}, "http"),
    ({"url": "javascript:alert(1)", "events": ["srm.detected"], "secret": SECRET}, "http"),
    ({"url": "http://", "events": ["srm.detected"], "secret": SECRET}, "host"),
    ({"url": "http://user:pw@127.0.0.1/x", "events": ["srm.detected"], "secret": SECRET}, "credentials"),
    ({"url": "http://127.0.0.1:99999/x", "events": ["srm.detected"], "secret": SECRET}, "valid URL"),
    ({"url": "http://127.0.0.1/" + "x" * 2000, "events": ["srm.detected"], "secret": SECRET}, "url"),
    ({"url": 5, "events": ["srm.detected"], "secret": SECRET}, "url"),
    ({"url": "http://127.0.0.1/x", "events": [], "secret": SECRET}, "events"),
    ({"url": "http://127.0.0.1/x", "events": "srm.detected", "secret": SECRET}, "events"),
    ({"url": "http://127.0.0.1/x", "events": ["srm.detected", "srm.detected"], "secret": SECRET}, "distinct"),
    ({"url": "http://127.0.0.1/x", "events": ["srm.fixed"], "secret": SECRET}, "srm.fixed"),
    ({"url": "http://127.0.0.1/x", "events": ["srm.detected"], "secret": "short"}, "secret"),
    ({"url": "http://127.0.0.1/x", "events": ["srm.detected"], "secret": "s" * 201}, "secret"),
    ({"url": "http://127.0.0.1/x", "events": ["srm.detected"]}, "secret"),
    ({"url": "http://127.0.0.1/x", "events": ["srm.detected"], "secret": SECRET, "format": "xml"}, "format"),
    ({"url": "http://127.0.0.1/x", "events": ["srm.detected"], "secret": SECRET, "active": True}, "unknown"),
    (["http://127.0.0.1/x"], "object"),
]


def test_bad_input_is_a_400_and_writes_nothing(client, admin):
    for body, word in BAD_BODIES:
        response = client.post("/api/v1/webhooks", json=body, headers=admin)
        assert response.status_code == 400, (body, response.get_json())
        assert word in response.get_json()["error"]["message"], body
    assert client.get("/api/v1/webhooks", headers=admin).get_json() == {"webhooks": []}


def test_admin_only(client, admin):
    body = {"url": "http://127.0.0.1/x", "events": ["srm.detected"], "secret": SECRET}
    assert client.post("/api/v1/webhooks", json=body).status_code == 401
    assert client.get("/api/v1/webhooks").status_code == 401
    assert client.delete("/api/v1/webhooks/1").status_code == 401
    assert client.get("/api/v1/webhooks/1/deliveries").status_code == 401
    assert client.post("/api/v1/webhooks", data="{oops", headers=admin).status_code == 400


def test_allowed_hosts_are_enforced_at_registration_and_at_send(app, client, admin, receiver):
    app.config["LEVER_WEBHOOK_ALLOWED_HOSTS"] = "hooks.slack.com"
    response = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["srm.detected"],
                                                     "secret": SECRET}, headers=admin)
    assert response.status_code == 400 and "LEVER_WEBHOOK_ALLOWED_HOSTS" in response.get_json()["error"]["message"]
    assert HttpSender(frozenset({"hooks.slack.com"}))(receiver.url, b"{}", {}).error.startswith("host ")
    assert receiver.received == []


# -- delivery ---------------------------------------------------------------------------------------

def test_stopping_delivers_one_signed_event_that_the_documented_snippet_verifies(app, client, admin, make_experiment,
                                                                                  receiver):
    verify = documented_verifier()
    make_experiment("hero")
    hook = register(client, admin, receiver.url)
    raised_at = stop(client, admin, "hero")
    stop(client, admin, "hero", winner="control")  # already stopped: a winner change raises nothing
    assert receiver.received == []  # nothing is sent inside the request
    report = deliver(app, time.time)
    assert (report.attempted, report.delivered) == (1, 1)
    assert deliver(app, time.time).attempted == 0

    (got,) = receiver.wait_for(1)
    event = got.json
    assert event["type"] == "experiment.stopped" and event["id"].startswith("evt_")
    assert event["experiment"] == {"key": "hero", "name": "Hero"}
    assert event["data"] == {"status": "stopped", "winner": "b"}
    assert raised_at <= event["created_at"] <= got.at
    assert got.headers["X-Lever-Event-Id"] == event["id"] and got.headers["X-Lever-Event"] == "experiment.stopped"
    header = got.headers["X-Lever-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, got.body) and verify_signature(SECRET, header, got.body, time.time())
    assert not verify("another-secret-entirely", header, got.body)
    assert not verify(SECRET, header, got.body.replace(b"hero", b"hera"))
    t = int(header.split(",")[0][2:])
    stale = header.replace(f"t={t}", f"t={t - 3600}")
    assert not verify(SECRET, stale, got.body)  # replayed later, re-signed timestamps would not match either

    (entry,) = log_of(client, admin, hook["id"])
    assert entry["event_id"] == event["id"] and entry["status"] == "delivered" and entry["attempts"] == 1
    assert entry["last_status"] == 200 and entry["last_error"] is None and entry["next_attempt_at"] is None

    # resumed and stopped again: a new transition, a new event
    assert client.patch("/api/v1/experiments/hero", json={"status": "running"}, headers=admin).status_code == 200
    stop(client, admin, "hero", winner=None)
    deliver(app, time.time)
    assert [r.json["data"]["winner"] for r in receiver.wait_for(2)] == ["b", None]
    assert len({r.json["id"] for r in receiver.received}) == 2


def test_slack_format_is_a_readable_text_line(app, client, admin, make_experiment, receiver):
    make_experiment("hero")
    register(client, admin, receiver.url, format="slack")
    stop(client, admin, "hero")
    deliver(app, time.time)
    (got,) = receiver.wait_for(1)
    assert got.json == {"text": "[Lever] Experiment hero was stopped; everyone now sees b."}


def test_failed_twice_then_delivered_on_the_third_attempt_with_the_same_id(app, client, admin, make_experiment):
    with Receiver(statuses=(500, 503)) as receiver:
        make_experiment("hero")
        hook = register(client, admin, receiver.url)
        t0 = stop(client, admin, "hero")
        now = [t0 + 1.0]
        clock = lambda: now[0]  # noqa: E731 — the fake clock

        assert deliver(app, clock).retrying == 1
        (entry,) = log_of(client, admin, hook["id"])
        assert (entry["status"], entry["attempts"], entry["last_status"], entry["last_error"]) == \
               ("pending", 1, 500, "HTTP 500")
        first_delay = entry["next_attempt_at"] - now[0]
        assert FIRST_RETRY_S * (1 - JITTER) <= first_delay <= FIRST_RETRY_S * (1 + JITTER)

        now[0] += first_delay - 1  # not due yet: nothing sent
        assert deliver(app, clock).attempted == 0 and len(receiver.received) == 1
        now[0] = entry["next_attempt_at"]
        assert deliver(app, clock).retrying == 1
        (entry,) = log_of(client, admin, hook["id"])
        assert (entry["attempts"], entry["last_status"]) == (2, 503)
        assert 2 * FIRST_RETRY_S * (1 - JITTER) <= entry["next_attempt_at"] - now[0] <= 2 * FIRST_RETRY_S * (1 + JITTER)

        now[0] = entry["next_attempt_at"]
        assert deliver(app, clock).delivered == 1
        (entry,) = log_of(client, admin, hook["id"])
        assert (entry["status"], entry["attempts"], entry["last_status"], entry["delivered_at"]) == \
               ("delivered", 3, 200, now[0])
        now[0] += 7 * 86400
        assert deliver(app, clock).attempted == 0
        got = receiver.wait_for(3)
        assert len(got) == 3 and len({r.json["id"] for r in got}) == 1  # deduplicable by id
        assert len({r.headers["X-Lever-Signature"] for r in got}) == 3  # each attempt signed at its own time


def test_retries_back_off_to_an_hour_for_24_hours_then_fail(app, client, admin, make_experiment):
    with Receiver(default_status=500) as receiver:
        make_experiment("hero")
        hook = register(client, admin, receiver.url)
        t0 = stop(client, admin, "hero")
        now = [t0]
        attempts = []
        for _ in range(100):
            report = deliver(app, lambda: now[0])
            if report.attempted:
                attempts.append(now[0])
            (entry,) = log_of(client, admin, hook["id"])
            if entry["status"] != "pending":
                break
            now[0] = entry["next_attempt_at"]
        assert entry["status"] == "failed" and entry["last_status"] == 500 and entry["next_attempt_at"] is None
        created = receiver.wait_for(len(attempts))[0].json["created_at"]
        gaps = [b - a for a, b in zip(attempts, attempts[1:])]
        assert attempts[-1] - created >= RETRY_WINDOW_S > attempts[-2] - created  # >= 24 h, then it gave up
        assert all(g <= MAX_RETRY_S * (1 + JITTER) for g in gaps) and max(gaps) >= MAX_RETRY_S * (1 - JITTER)
        assert all(b >= a * 0.99 for a, b in zip(gaps[:6], gaps[1:7]))  # exponential before the cap
        assert 25 <= entry["attempts"] == len(attempts) == len(receiver.received) <= 40


def test_deleting_a_webhook_stops_its_deliveries(app, client, admin, make_experiment, receiver):
    make_experiment("hero")
    kept = register(client, admin, receiver.url.replace("/hook", "/kept"))
    gone = register(client, admin, receiver.url.replace("/hook", "/gone"))
    stop(client, admin, "hero")
    assert client.delete(f"/api/v1/webhooks/{gone['id']}", headers=admin).status_code == 200
    assert deliver(app, time.time).attempted == 1
    assert [r.path for r in receiver.wait_for(1)] == ["/kept"]
    assert len(log_of(client, admin, kept["id"])) == 1


def test_a_webhook_only_gets_what_it_subscribed_to_and_what_came_after_it(app, client, admin, make_experiment,
                                                                         receiver):
    make_experiment("early")
    make_experiment("late")
    stop(client, admin, "early")  # before any webhook: nobody to tell
    register(client, admin, receiver.url, ["srm.detected"])
    stop(client, admin, "late")
    assert deliver(app, time.time).attempted == 0 and receiver.received == []


# -- the sender's failure modes -------------------------------------------------------------------------

def test_sender_failures_are_attempts_with_a_reason():
    send = HttpSender(frozenset(), timeout_s=0.3)
    with Receiver(delay_s=1.0) as slow:
        result = send(slow.url, b"{}", {})
        assert result.status is None and "timed out" in result.error.lower()
    with Receiver() as gone:
        url = gone.url
    result = send(url, b"{}", {})  # nothing listens there any more
    assert result.status is None and "refused" in result.error.lower()

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    listener = socket.create_server(("127.0.0.1", 0))  # answers something that is not HTTP

    def garbage() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"SMTP ready\r\n\r\n")
        conn.close()

    threading.Thread(target=garbage, daemon=True).start()
    result = send(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {})
    listener.close()
    assert result.status is None and result.error.startswith(("BadStatusLine", "RemoteDisconnected")), result

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = send(f"http://127.0.0.1:{server.server_port}/", b"{}", {})
        assert (result.status, result.error) == (307, "HTTP 307")  # not followed
    finally:
        server.shutdown()
        server.server_close()


def test_finished_events_past_retention_are_pruned_and_pending_ones_kept(app, client, admin, runner):
    """The outbox does not grow forever: ``prune_log`` (hourly in ``flask deliver``, and in
    ``flask prune-events``) drops events whose every delivery finished, never a pending one."""
    storage = app.extensions["lever.storage"]
    with Receiver(statuses=(200,)) as ok, Receiver(statuses=(500,)) as failing:
        hook = register(client, admin, ok.url)
        old = time.time() - 40 * 86400
        storage.raise_events([new_event("experiment.stopped", None, f"old {i}", {"i": i}, old) for i in range(3)])
        assert deliver(app, lambda: old + 1).delivered == 3
        register(client, admin, failing.url)  # a second hook keeps one old event pending
        storage.raise_events([new_event("experiment.stopped", None, "old pending", {}, old + 2)])
        report = deliver(app, lambda: old + 3)
        assert (report.delivered, report.retrying) == (1, 1)
    storage.raise_events([new_event("experiment.stopped", None, "recent", {}, time.time())])
    assert prune_log(storage, time.time(), 0) == 0  # 0 keeps everything
    assert len(log_of(client, admin, hook["id"])) == 5
    assert prune_log(storage, time.time(), 30) == 3  # the three delivered old ones
    assert prune_log(storage, time.time(), 30) == 0  # idempotent
    left = log_of(client, admin, hook["id"])
    assert sorted(e["status"] for e in left) == ["delivered", "pending"]  # old-but-pending event whole, recent one
    result = runner.invoke(args=["prune-events"])
    assert result.exit_code == 0 and "pruned 0 finished webhook events" in result.output
