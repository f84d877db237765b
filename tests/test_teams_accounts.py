"""People and keys: create-user, login, invitations, deactivation and password change ending
sessions, role-aware pages, API keys (secret once, stored as a hash, ingest-only), forged rewards."""
from __future__ import annotations

import hashlib
import time

from app.service import accounts

from .dbutil import query
from .teams_helpers import PASSWORD, csrf_of, log_in, make_account, make_key, session_csrf


def test_create_user_cli_then_login_with_email_and_password(app, runner, database_url):
    result = runner.invoke(args=["create-user", "Ana@Example.com", "--role", "admin", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    stored = query(database_url, "SELECT email, role, password_hash FROM accounts")
    assert stored[0][:2] == ("ana@example.com", "admin")
    assert stored[0][2].startswith("$argon2id$") and PASSWORD not in stored[0][2]
    assert runner.invoke(args=["create-user", "ana@example.com", "--password", PASSWORD]).exit_code != 0  # duplicate
    assert runner.invoke(args=["create-user", "bo@example.com", "--password", "short"]).exit_code != 0
    browser = app.test_client()
    assert log_in(browser, "ana@example.com", "wrong password!!").status_code == 401
    assert log_in(browser, "ANA@example.com").status_code == 303
    page = browser.get("/team").get_data(as_text=True)
    assert "ana@example.com" in page and 'id="invite-form"' in page


def test_failed_logins_are_throttled_per_account(app):
    make_account(app, "ana@example.com", "viewer")
    browser = app.test_client()
    statuses = [log_in(browser, "ana@example.com", "not the password").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert log_in(browser, "ana@example.com").status_code == 429  # even the right one waits now
    assert log_in(browser, "someone@example.com", "x" * 12).status_code == 401  # other accounts unaffected


def test_invitation_link_works_once_and_expires(app, client, admin):
    response = client.post("/api/v1/users/invitations", json={"email": "cy@example.com", "role": "editor"},
                           headers=admin)
    assert response.status_code == 201
    link = response.get_json()["url"]
    path = link[link.index("/invite/"):]
    stored = query(app.config["DATABASE_URL"], "SELECT token_hash FROM invitations")[0][0]
    assert path.rsplit("/", 1)[1] not in stored and len(stored) == 64  # only the SHA-256 is kept
    invitee = app.test_client()
    page = invitee.get(path).get_data(as_text=True)
    assert "cy@example.com" in page and "editor" in page
    differ = invitee.post(path, data={"password": PASSWORD, "password_again": PASSWORD + "!",
                                      "csrf_token": csrf_of(page)})
    assert differ.status_code == 400
    joined = invitee.post(path, data={"password": PASSWORD, "password_again": PASSWORD, "csrf_token": csrf_of(page)})
    assert joined.status_code == 303
    assert 'id="whoami"' in invitee.get("/").get_data(as_text=True)
    again = app.test_client().get(path)
    assert again.status_code == 410 and again.mimetype == "text/html"
    storage = app.extensions["lever.storage"]
    _, token = accounts.invite(storage, "old@example.com", "viewer", "test", time.time() - 73 * 3600)
    assert app.test_client().get(f"/invite/{token}").status_code == 410
    users = client.get("/api/v1/users", headers=admin).get_json()
    assert [u["email"] for u in users["users"]] == ["cy@example.com"] and users["invitations"] == []


def test_invitation_from_the_team_page_shows_the_link_once(app):
    make_account(app, "ana@example.com", "admin")
    browser = app.test_client()
    log_in(browser, "ana@example.com")
    page = browser.post("/team/invitations", data={"email": "dee@example.com", "role": "viewer",
                                                    "csrf_token": session_csrf(browser)}).get_data(as_text=True)
    assert 'id="invite-link"' in page and "/invite/" in page
    assert 'id="invite-link"' not in browser.get("/team").get_data(as_text=True)
    assert browser.post("/team/invitations", data={"email": "dee@example.com", "role": "viewer"}).status_code == 400


def test_revoking_an_invitation_kills_its_link_and_is_audited(app, client, admin):
    made = client.post("/api/v1/users/invitations", json={"email": "eve@example.com", "role": "admin"},
                       headers=admin).get_json()
    path = made["url"][made["url"].index("/invite/"):]
    page = app.test_client().get(path)
    assert page.status_code == 200
    revoked = client.delete(f"/api/v1/users/invitations/{made['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.get_json()["expires_at"] <= time.time()
    assert app.test_client().get(path).status_code == 410
    invitee = app.test_client()
    form = invitee.get(path)
    assert form.status_code == 410  # and the form's POST cannot create the account either
    assert client.get("/api/v1/users", headers=admin).get_json() == {"users": [], "invitations": []}
    again = client.delete(f"/api/v1/users/invitations/{made['id']}", headers=admin)
    assert again.status_code == 410 and again.get_json()["error"]["code"] == "invitation_unavailable"
    missing = client.delete("/api/v1/users/invitations/999999", headers=admin)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "invitation_not_found"
    entries = client.get("/api/v1/audit", headers=admin).get_json()["entries"]
    assert [e["action"] for e in entries if e["target"] == "eve@example.com"] == [
        "account.invitation_revoked", "account.invited"]  # once: the second revoke wrote nothing


def test_a_viewer_cannot_revoke_an_invitation_and_the_team_page_can(app, client, admin):
    made = client.post("/api/v1/users/invitations", json={"email": "fay@example.com", "role": "viewer"},
                       headers=admin).get_json()
    make_account(app, "vi@example.com", "viewer")
    viewer = app.test_client()
    log_in(viewer, "vi@example.com")
    refused = viewer.post(f"/team/invitations/{made['id']}/revoke", data={"csrf_token": session_csrf(viewer)})
    assert refused.status_code == 403
    make_account(app, "ana@example.com", "admin")
    browser = app.test_client()
    log_in(browser, "ana@example.com")
    assert f"/team/invitations/{made['id']}/revoke" in browser.get("/team").get_data(as_text=True)
    done = browser.post(f"/team/invitations/{made['id']}/revoke", data={"csrf_token": session_csrf(browser)})
    assert done.status_code == 303
    assert client.get("/api/v1/users", headers=admin).get_json()["invitations"] == []


def test_deactivation_ends_sessions_at_once_and_reactivation_needs_a_new_login(app, client, admin):
    viewer = make_account(app, "vi@example.com", "viewer")
    browser = app.test_client()
    log_in(browser, "vi@example.com")
    assert browser.get("/").status_code == 200
    assert client.patch(f"/api/v1/users/{viewer.id}", json={"active": False}, headers=admin).status_code == 200
    assert browser.get("/").status_code == 302  # logged out
    assert log_in(app.test_client(), "vi@example.com").status_code == 401
    assert client.patch(f"/api/v1/users/{viewer.id}", json={"active": True}, headers=admin).status_code == 200
    assert browser.get("/").status_code == 302  # the old session stays dead
    assert log_in(browser, "vi@example.com").status_code == 303


def test_password_change_ends_the_other_sessions(app):
    make_account(app, "vi@example.com", "viewer")
    here, elsewhere = app.test_client(), app.test_client()
    log_in(here, "vi@example.com")
    log_in(elsewhere, "vi@example.com")
    new = "a much longer new password"
    wrong = here.post("/account", data={"current_password": "nope", "new_password": new,
                                        "csrf_token": session_csrf(here)})
    assert wrong.status_code == 400
    changed = here.post("/account", data={"current_password": PASSWORD, "new_password": new,
                                          "csrf_token": session_csrf(here)})
    assert changed.status_code == 303
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302
    assert log_in(app.test_client(), "vi@example.com", new).status_code == 303


def test_a_viewer_sees_no_action_forms_and_a_role_change_applies_at_once(app, client, admin, make_experiment):
    make_experiment()
    viewer = make_account(app, "vi@example.com", "viewer")
    browser = app.test_client()
    log_in(browser, "vi@example.com")
    page = browser.get("/experiments/hero").get_data(as_text=True)
    assert 'id="actions"' not in page and "events.csv" not in page and "New experiment" not in page
    assert 'id="history"' in page
    pause = {"action": "pause", "csrf_token": session_csrf(browser)}
    assert browser.post("/experiments/hero/status", data=pause).status_code == 403
    client.patch(f"/api/v1/users/{viewer.id}", json={"role": "editor"}, headers=admin)
    page = browser.get("/experiments/hero").get_data(as_text=True)
    assert 'id="actions"' in page and "events.csv" in page
    assert browser.post("/experiments/hero/status", data=pause).status_code == 303
    assert client.get("/api/v1/experiments/hero", headers=admin).get_json()["status"] == "paused"


def test_api_keys_secret_once_hash_stored_list_without_secret(app, client, admin):
    key, headers = make_key(client, admin, "viewer", name="dashboards")
    secret = headers["Authorization"].split()[1]
    assert secret.startswith("lever_sk_") and len(secret) == len("lever_sk_") + 43
    assert key["prefix"] == secret[:15] and key["role"] == "viewer" and key["last_used_at"] is None
    rows = query(app.config["DATABASE_URL"], "SELECT * FROM api_keys")
    assert not any(secret in str(value) for value in rows[0])
    assert hashlib.sha256(secret.encode()).hexdigest() in rows[0]
    listed = client.get("/api/v1/api-keys", headers=admin).get_json()["api_keys"]
    assert [k["name"] for k in listed] == ["dashboards"] and "secret" not in listed[0]
    assert client.get("/api/v1/experiments", headers=headers).status_code == 200
    first_use = client.get("/api/v1/api-keys", headers=admin).get_json()["api_keys"][0]["last_used_at"]
    assert first_use is not None
    client.get("/api/v1/experiments", headers=headers)
    assert client.get("/api/v1/api-keys", headers=admin).get_json()["api_keys"][0]["last_used_at"] == first_use
    for bad in ({"name": "x", "role": "owner"}, {"name": "", "role": "viewer"}, {"name": "x"},
                {"name": "x", "role": "viewer", "extra": 1}):
        assert client.post("/api/v1/api-keys", json=bad, headers=admin).status_code == 400
    for missing in (999, 2 ** 70):  # past any 64-bit id: still a 404, not a database error
        assert client.delete(f"/api/v1/api-keys/{missing}", headers=admin).status_code == 404
        assert client.patch(f"/api/v1/users/{missing}", json={"active": False}, headers=admin).status_code == 404


def test_an_ingest_key_sends_rewards_and_nothing_else(client, admin, make_experiment):
    make_experiment()
    client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "srv"})
    _, ingest = make_key(client, admin, "ingest", name="checkout-backend")
    by_visitor = {"experiment": "hero", "visitor": "srv"}
    assert client.post("/api/v1/reward", json=by_visitor, headers=ingest).status_code == 202
    assert client.get("/api/v1/experiments", headers=ingest).status_code == 403
    assert client.patch("/api/v1/experiments/hero", json={"status": "paused"}, headers=ingest).status_code == 403


def test_forged_rewards_by_visitor_id_are_refused_and_the_token_path_stays_public(client, admin, make_experiment):
    make_experiment()
    token = client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "v"}).get_json()["assignment"]
    forged = client.post("/api/v1/reward", json={"experiment": "hero", "visitor": "v"})
    assert forged.status_code == 401
    _, viewer = make_key(client, admin, "viewer")
    assert client.post("/api/v1/reward", json={"experiment": "hero", "visitor": "v"}, headers=viewer).status_code == 403
    stats = client.get("/api/v1/experiments/hero/stats", headers=admin).get_json()
    assert sum(v["conversions_total"] for v in stats["variants"]) == 0
    assert client.post("/api/v1/reward", json={"assignment": token}).status_code == 202
