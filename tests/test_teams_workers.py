"""Revocation across workers: a real 2-worker gunicorn refuses a revoked key in every worker
within the key cache's TTL (1 s), on both backends."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.service.accounts import KEY_CACHE_TTL_S

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .servers import gunicorn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENV = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": ""}


def _ask(base: str, headers: dict[str, str], attempts: int = 32) -> list[tuple[int, int | None]]:
    """(status, worker pid) of many parallel requests on new connections (both sync workers answer)."""
    def one(_: int) -> tuple[int, int | None]:
        response = requests.get(f"{base}/api/v1/experiments/hero/policy", headers=headers, timeout=5)
        return response.status_code, response.json().get("worker")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(attempts)))


@pytest.mark.slow
def test_a_revoked_key_is_refused_by_every_worker_within_the_ttl(database_url):
    with gunicorn(database_url, workers=2, env=ENV) as base:
        assert requests.post(f"{base}/api/v1/experiments", json=experiment_body(), headers=ADMIN).status_code == 201
        created = requests.post(f"{base}/api/v1/api-keys", json={"name": "leaver", "role": "viewer"}, headers=ADMIN)
        key = created.json()
        headers = {"Authorization": f"Bearer {key['secret']}"}
        answers = _ask(base, headers)
        assert {status for status, _ in answers} == {200}
        assert len({pid for _, pid in answers}) == 2  # both workers know (and cache) the key
        revoked_at = time.monotonic()
        assert requests.delete(f"{base}/api/v1/api-keys/{key['id']}", headers=ADMIN).status_code == 200
        while True:
            statuses = {status for status, _ in _ask(base, headers)}
            elapsed = time.monotonic() - revoked_at
            if statuses == {401}:
                break
            assert elapsed < 2 * KEY_CACHE_TTL_S, f"still accepted {elapsed:.2f} s after revocation"
            time.sleep(0.05)
        assert elapsed <= 2 * KEY_CACHE_TTL_S
        # and it stays refused; the admin token still works everywhere
        assert {status for status, _ in _ask(base, headers, 16)} == {401}
        assert {status for status, _ in _ask(base, ADMIN, 16)} == {200}
