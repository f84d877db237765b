"""Several instances on one database: two gunicorn instances (each Lever's default model, 2
workers) on different ports share one PostgreSQL schema; a reward through one instance is
reflected in every worker's policy of the other within 2 s (the default refresh is 1 s), and
an assignment made through either is sticky through the other."""
from __future__ import annotations

import os
import time

import pytest
import requests

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .dbutil import TEST_DATABASE_URL_ENV, fresh_schema
from .servers import gunicorn
from .test_gunicorn_concurrency import policies_by_worker, wait_until_every_worker_has

pytestmark = pytest.mark.skipif(not os.environ.get(TEST_DATABASE_URL_ENV),
                                reason=f"{TEST_DATABASE_URL_ENV} is not set (PostgreSQL-only test)")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENV = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": ""}


@pytest.mark.slow
def test_a_reward_through_one_instance_reaches_the_other_within_two_seconds():
    with fresh_schema(os.environ[TEST_DATABASE_URL_ENV]) as url, \
            gunicorn(url, workers=2, env=ENV) as first, gunicorn(url, workers=2, env=ENV) as second:
        assert first != second
        assert requests.post(f"{first}/api/v1/experiments", json=experiment_body(), headers=ADMIN,
                             timeout=10).status_code == 201
        body = requests.post(f"{first}/api/v1/assign", json={"experiment": "hero", "visitor": "i1"}, timeout=10).json()
        again = requests.post(f"{second}/api/v1/assign", json={"experiment": "hero", "visitor": "i1"},
                              timeout=10).json()
        assert again["assignment"] == body["assignment"] and again["sticky"] is True
        baseline = policies_by_worker(second, "hero")  # the other instance's workers have cached it
        assert len(baseline) == 2 and all(p["model_version"] == 1 for p in baseline.values())
        rewarded_at = time.monotonic()
        assert requests.post(f"{first}/api/v1/reward", json={"assignment": body["assignment"]},
                             timeout=10).status_code == 202
        wait_until_every_worker_has(second, "hero", 2, rewarded_at, 2.0)
