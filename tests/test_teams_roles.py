"""The role table, route by route: every non-public route declares a permission, and each role
gets exactly what the table (app.service.permissions) grants it — on both backends."""
from __future__ import annotations

import re

import pytest

from app.service.permissions import PERMISSIONS, ROLE_PERMISSIONS, allows
from app.web.auth import PERMISSION_ATTRIBUTE

from .teams_helpers import log_in, make_account, make_key, session_csrf

#: endpoints open to anyone, by design (everything else must declare a permission)
PUBLIC_ENDPOINTS = {"static", "healthz", "public.assign", "public.reward", "openapi.openapi_json",
                    "snippet.script", "snippet.demo"}
METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT")


def _routes(app):
    """(rule, method, endpoint, permission) of every route but the public ones."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in PUBLIC_ENDPOINTS or getattr(view, PERMISSION_ATTRIBUTE, "missing") is None:
            continue
        for method in sorted(set(rule.methods) & set(METHODS)):
            yield rule, method, rule.endpoint, getattr(view, PERMISSION_ATTRIBUTE, None)


def test_every_route_is_public_or_declares_a_permission(app):
    undeclared = [f"{method} {rule.rule} ({endpoint})" for rule, method, endpoint, permission in _routes(app)
                  if permission is None]
    assert not undeclared, f"routes without @require(permission) or @public: {undeclared}"
    declared = {permission for *_, permission in _routes(app)}
    assert declared <= PERMISSIONS
    assert {"reports.read", "experiments.write", "keys.manage", "accounts.manage", "audit.read",
            "visitors.manage", "events.export"} <= declared
    for endpoint in PUBLIC_ENDPOINTS - {"static", "healthz"}:
        assert endpoint in app.view_functions, f"stale public endpoint {endpoint}"


def test_the_documented_permission_is_the_enforced_one(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    by_path = {}
    for rule, method, endpoint, permission in _routes(app):
        if rule.rule.startswith("/api/"):
            by_path[(re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method.lower())] = permission
    assert by_path
    for (path, method), permission in by_path.items():
        operation = document["paths"][path][method]
        assert operation["x-lever-permission"] == permission, (method, path)
        assert operation["x-lever-roles"] == [r for r, held in ROLE_PERMISSIONS.items() if permission in held]


def test_role_table_shape():
    """Least privilege first: each person's role holds everything of the one before it."""
    assert ROLE_PERMISSIONS["viewer"] < ROLE_PERMISSIONS["editor"] < ROLE_PERMISSIONS["admin"]
    assert ROLE_PERMISSIONS["ingest"] == {"events.ingest"}
    assert ROLE_PERMISSIONS["admin"] == PERMISSIONS
    assert not allows("viewer", "events.ingest") and allows("editor", "events.ingest")
    assert not allows("nobody", "reports.read") and not allows(None, "reports.read")


def _concrete(rule, ids: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: ids[m.group(1)], rule.rule)


@pytest.fixture
def world(app, client, admin, make_experiment):
    """An experiment, a visitor, a spare key and a spare account to aim routes at."""
    make_experiment()
    client.post("/api/v1/assign", json={"experiment": "hero", "visitor": "v-1"})
    spare_key, _ = make_key(client, admin, "viewer", name="spare")
    spare = make_account(app, "spare@example.com", "viewer")
    return {"key": "hero", "visitor": "v-1", "key_id": str(spare_key["id"]), "account_id": str(spare.id),
            "token": "not-a-token", "webhook_id": "1", "metric": "revenue", "invitation_id": "1"}


def test_api_routes_allow_and_forbid_by_role(app, client, admin, world):
    headers = {role: make_key(client, admin, role)[1] for role in ROLE_PERMISSIONS}
    checked = 0
    for rule, method, endpoint, permission in _routes(app):
        if not rule.rule.startswith("/api/"):
            continue
        path = _concrete(rule, world)
        for role in ("ingest", "viewer", "editor", "admin"):  # least first: admin's writes go last
            response = client.open(path, method=method, json={}, headers=headers[role])
            response.close()  # streamed answers (CSV) end their request here
            if allows(role, permission):
                assert response.status_code not in (401, 403), (role, method, path, response.get_json())
            else:
                assert response.status_code == 403, (role, method, path)
                assert response.get_json()["error"]["code"] == "insufficient_role"
            checked += 1
        anonymous = client.open(path, method=method, json={})
        assert anonymous.status_code == 401 and anonymous.get_json()["error"]["code"] == "unauthorized"
        wrong = client.open(path, method=method, json={}, headers={"Authorization": "Bearer lever_sk_" + "x" * 43})
        assert wrong.status_code == 401, (method, path)
    assert checked >= 4 * 15


def test_pages_allow_and_forbid_by_role(app, world):
    browsers = {}
    for role in ("viewer", "editor", "admin"):
        make_account(app, f"{role}@example.com", role)
        browsers[role] = app.test_client()
        assert log_in(browsers[role], f"{role}@example.com").status_code == 303
    checked = 0
    for rule, method, endpoint, permission in _routes(app):
        if rule.rule.startswith("/api/"):
            continue
        path = _concrete(rule, world)
        if "account_id" in rule.arguments and method == "POST":
            path = _concrete(rule, {**world, "account_id": str(world["account_id"])})
        for role in ("viewer", "editor", "admin"):
            browser = browsers[role]
            data = {"csrf_token": session_csrf(browser)} if method == "POST" else None
            response = browser.open(path, method=method, data=data)
            response.close()
            if allows(role, permission):
                assert response.status_code not in (302, 401, 403), (role, method, path)
            else:
                assert response.status_code == 403, (role, method, path)
                assert response.mimetype == "text/html"  # a page for browsers, not JSON
            checked += 1
        anonymous = app.test_client().open(path, method=method)
        assert anonymous.status_code in (302, 400), (method, path)  # to the login page (POSTs: no CSRF token)
        if anonymous.status_code == 302:
            assert "/login" in anonymous.headers["Location"]
    assert checked >= 3 * 10


def test_a_revoked_or_unknown_key_is_401(client, admin, make_experiment):
    make_experiment()
    key, headers = make_key(client, admin, "viewer")
    assert client.get("/api/v1/experiments", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin).status_code == 200
    refused = client.get("/api/v1/experiments", headers=headers)  # this worker forgets at once
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
    tampered = {"Authorization": headers["Authorization"][:-2] + "AA"}
    assert client.get("/api/v1/experiments", headers=tampered).status_code == 401
