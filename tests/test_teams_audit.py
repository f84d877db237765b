"""The audit log: an entry for every change, in the change's transaction, never edited; the API
pages it and each experiment's report page shows its history."""
from __future__ import annotations

import math
import time

import pytest

from app.domain.audit import AuditEntry

from .conftest import experiment_body
from .dbutil import query
from .teams_helpers import log_in, make_account, make_key, session_csrf


def entries(client, admin, **params):
    response = client.get("/api/v1/audit", query_string=params, headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["entries"]


def test_every_change_leaves_an_entry_with_who_before_and_after(app, client, admin, runner):
    _, editor = make_key(client, admin, "editor", name="release-bot")
    assert client.post("/api/v1/experiments", json=experiment_body(), headers=editor).status_code == 201
    client.patch("/api/v1/experiments/hero", json={"status": "paused"}, headers=editor)
    client.patch("/api/v1/experiments/hero", json={"status": "running"}, headers=admin)
    make_account(app, "ed@example.com", "editor")
    browser = app.test_client()
    log_in(browser, "ed@example.com")
    browser.post("/experiments/hero/status", data={"action": "stop", "winner": "b",
                                                   "csrf_token": session_csrf(browser)})
    history = entries(client, admin, experiment="hero")
    assert [(e["action"], e["actor"]) for e in history] == [
        ("experiment.winner_declared", "ed@example.com"), ("experiment.resumed", "admin-token"),
        ("experiment.paused", "key:release-bot"), ("experiment.created", "key:release-bot")]
    assert history[0]["before"] == {"status": "running", "winner": None}
    assert history[0]["after"] == {"status": "stopped", "winner": "b"}
    assert history[-1]["before"] is None and history[-1]["after"]["variants"] == ["control", "b"]
    assert all(e["at"] > time.time() - 60 and e["experiment"] == "hero" for e in history)

    key, _ = make_key(client, admin, "ingest", name="srv")
    client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)
    assert runner.invoke(args=["create-user", "new@example.com", "--password", "p" * 12]).exit_code == 0
    new_id = client.get("/api/v1/users", headers=admin).get_json()["users"][-1]["id"]
    client.patch(f"/api/v1/users/{new_id}", json={"role": "admin", "active": False}, headers=admin)
    client.post("/api/v1/users/invitations", json={"email": "in@example.com", "role": "viewer"}, headers=admin)
    everything = entries(client, admin, limit=200)
    actions = [e["action"] for e in everything]
    for action in ("api_key.created", "api_key.revoked", "account.created", "account.role_changed",
                   "account.deactivated", "account.invited"):
        assert action in actions, action
    created = next(e for e in everything if e["action"] == "account.created" and e["target"] == "new@example.com")
    assert created["actor"] == "cli"
    changed = next(e for e in everything if e["action"] == "account.role_changed")
    assert (changed["before"], changed["after"]) == ({"role": "viewer"}, {"role": "admin"})
    revoked = next(e for e in everything if e["action"] == "api_key.revoked")
    assert revoked["target"] == "key:srv" and "lever_sk_" not in str(revoked)


def test_metric_webhook_and_experiment_metric_changes_are_audited(client, admin):
    _, editor = make_key(client, admin, "editor", name="analyst")
    for body in ({"key": "purchase_rate", "type": "conversion", "event": "purchase"},
                 {"key": "revenue", "type": "sum", "event": "purchase", "cap": 1000}):
        assert client.post("/api/v1/metrics", json=body, headers=editor).status_code == 201
    assert client.patch("/api/v1/metrics/revenue", json={"cap": 500}, headers=editor).status_code == 200
    body = experiment_body(mode="ab", metrics={"primary": "purchase_rate"})
    assert client.post("/api/v1/experiments", json=body, headers=editor).status_code == 201
    assert client.patch("/api/v1/experiments/hero", json={"metrics": {"primary": "purchase_rate",
                                                                      "secondary": ["revenue"]}},
                        headers=editor).status_code == 200
    hook = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["srm.detected"],
                                                  "secret": "s" * 20}, headers=admin).get_json()
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin).status_code == 200
    log = entries(client, admin)
    seen = [(e["action"], e["actor"], e["target"]) for e in log]
    assert ("metric.created", "key:analyst", "purchase_rate") in seen
    edited = next(e for e in log if e["action"] == "metric.edited")
    assert (edited["before"]["cap"], edited["after"]["cap"]) == (1000, 500)
    changed = next(e for e in log if e["action"] == "experiment.edited")
    assert changed["experiment"] == "hero" and changed["after"]["metrics"]["secondary"] == ["revenue"]
    assert ("webhook.created", "admin-token", str(hook["id"])) in seen
    assert ("webhook.deleted", "admin-token", str(hook["id"])) in seen
    assert all("s" * 20 not in str(e) for e in log)  # the secret never reaches the log


def test_erasure_is_recorded_without_the_visitor(app, client, admin, make_experiment):
    make_experiment()
    client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "alice-7f3"})
    assert client.delete("/api/v1/visitors/alice-7f3", headers=admin).get_json()["erased_assignments"] == 1
    erased = [e for e in entries(client, admin) if e["action"] == "visitor.erased"]
    assert len(erased) == 1 and erased[0]["actor"] == "admin-token"
    rows = query(app.config["DATABASE_URL"], "SELECT * FROM audit_log")
    assert "alice-7f3" not in repr(rows)


def test_a_refused_change_writes_no_entry_and_a_failed_entry_undoes_the_change(app, client, admin, make_experiment):
    make_experiment()
    before = len(entries(client, admin))
    assert client.post("/api/v1/experiments", json={"key": "hero", "variants": ["a", "b"]},
                       headers=admin).status_code == 409
    assert client.patch("/api/v1/experiments/hero", json={"status": "bogus"}, headers=admin).status_code == 400
    assert len(entries(client, admin)) == before
    storage = app.extensions["lever.storage"]
    broken = AuditEntry(actor="test", action="experiment.paused", experiment_key="hero", after={"x": math.nan})
    with pytest.raises(ValueError):  # the entry cannot be written (NaN is not JSON) ...
        storage.set_status("hero", "paused", None, time.time(), audit=broken)
    assert storage.get_experiment("hero").status == "running"  # ... so the change rolled back with it
    assert len(entries(client, admin)) == before


def test_entries_are_never_edited_or_deleted(app, client, admin, make_experiment):
    make_experiment()
    url = app.config["DATABASE_URL"]
    for statement in ("UPDATE audit_log SET actor = 'someone-else'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="never edited"):
            query(url, statement)
    assert query(url, "SELECT actor FROM audit_log") == [("admin-token",)]
    with pytest.raises(ValueError):
        AuditEntry(actor="x", action="experiment.renamed")  # actions are declared


def test_the_audit_api_pages_filters_and_is_admin_only(client, admin, make_experiment):
    make_experiment("one")
    make_experiment("two")
    for status in ("paused", "running", "paused"):
        client.patch("/api/v1/experiments/one", json={"status": status}, headers=admin)
    first = client.get("/api/v1/audit", query_string={"experiment": "one", "limit": 2}, headers=admin).get_json()
    assert [e["action"] for e in first["entries"]] == ["experiment.paused", "experiment.resumed"]
    second = client.get("/api/v1/audit", query_string={"experiment": "one", "limit": 2,
                                                        "before": first["next_before"]}, headers=admin).get_json()
    assert [e["action"] for e in second["entries"]] == ["experiment.paused", "experiment.created"]
    last = client.get("/api/v1/audit", query_string={"experiment": "one", "limit": 2,
                                                      "before": second["next_before"]}, headers=admin).get_json()
    assert last == {"entries": [], "next_before": None}
    assert {e["experiment"] for e in entries(client, admin, experiment="two")} == {"two"}
    for bad in ({"limit": 0}, {"limit": 201}, {"before": "x"}):
        assert client.get("/api/v1/audit", query_string=bad, headers=admin).status_code == 400
    for role in ("viewer", "editor"):
        _, headers = make_key(client, admin, role)
        assert client.get("/api/v1/audit", headers=headers).status_code == 403


def test_the_report_page_shows_who_changed_what(app, client, admin, make_experiment):
    make_experiment()
    _, editor = make_key(client, admin, "editor", name="ops-bot")
    client.patch("/api/v1/experiments/hero", json={"status": "stopped", "winner": "b"}, headers=editor)
    make_account(app, "vi@example.com", "viewer")
    browser = app.test_client()
    log_in(browser, "vi@example.com")
    page = browser.get("/experiments/hero").get_data(as_text=True)
    history = page[page.index('id="history"'):]
    assert "key:ops-bot" in history and "declared a winner" in history and "winner=b" in history
    assert "admin-token" in history and "created the experiment" in history
