"""Helpers of the teams tests: API keys and accounts of each role, logged-in browser clients."""
from __future__ import annotations

import re
import time

from app.service import accounts

PASSWORD = "correct horse battery staple"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def make_key(client, admin: dict[str, str], role: str, name: str | None = None) -> tuple[dict, dict[str, str]]:
    """A new API key of ``role``: (its JSON, the Authorization header that sends it)."""
    response = client.post("/api/v1/api-keys", json={"name": name or f"{role}-key", "role": role}, headers=admin)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body, {"Authorization": f"Bearer {body['secret']}"}


def make_account(app, email: str, role: str, password: str = PASSWORD):
    return accounts.create_account(app.extensions["lever.storage"], email, role, password, "test", time.time())


def log_in(client, email: str, password: str = PASSWORD):
    """Log ``client`` in with email and password; returns the response (303 on success)."""
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_of(page)})


def session_csrf(client) -> str:
    with client.session_transaction() as session:
        return session["csrf"]
