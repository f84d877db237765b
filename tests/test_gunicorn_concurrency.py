"""Two real gunicorn workers on loopback: nothing acknowledged is lost or doubled,
and every worker learns from every reward within one refresh interval."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.storage import open_storage

from .conftest import ADMIN_TOKEN, SECRET_KEY, experiment_body
from .dbutil import query
from .servers import gunicorn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENV = {"LEVER_ADMIN_TOKEN": ADMIN_TOKEN, "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_RATE_LIMIT": ""}


def policies_by_worker(base: str, key: str, attempts: int = 64) -> dict[int, dict]:
    """Ask many times in parallel, on new connections, so that both sync workers answer."""

    def ask(_: int) -> dict:
        return requests.get(f"{base}/api/v1/experiments/{key}/policy", headers=ADMIN, timeout=5).json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {body["worker"]: body for body in pool.map(ask, range(attempts))}


def wait_until_every_worker_has(base: str, key: str, model_version: int, since: float, within_s: float) -> None:
    """Poll until both workers of ``base`` report ``model_version``; fail once ``within_s`` has
    passed since the monotonic time ``since``."""
    while True:
        seen = policies_by_worker(base, key, attempts=10)
        if len(seen) == 2 and all(p["model_version"] == model_version for p in seen.values()):
            break
        assert time.monotonic() - since < within_s, f"workers still at {[p['model_version'] for p in seen.values()]}"
        time.sleep(0.05)
    assert time.monotonic() - since < within_s


@pytest.mark.slow
def test_concurrent_assign_and_reward_lose_and_double_nothing(tmp_path, database_url):
    url = database_url
    with gunicorn(url, workers=2, env={**ENV, "LEVER_REFRESH_MS": "200"}, log_path=tmp_path / "gunicorn.log") as base:
        assert requests.post(f"{base}/api/v1/experiments", json=experiment_body(), headers=ADMIN).status_code == 201

        def visitor(i: int) -> tuple[str, int | None, bool]:
            with requests.Session() as session:
                body = session.post(f"{base}/api/v1/assign", json={"experiment": "hero", "visitor": f"c{i}"},
                                    timeout=10).json()
                # the same visitor again (sticky) and, for some, a conversion sent twice (a retry)
                again = session.post(f"{base}/api/v1/assign", json={"experiment": "hero", "visitor": f"c{i}"},
                                     timeout=10).json()
                assert again["assignment"] == body["assignment"]
                counted = False
                if i % 3 == 0:
                    for _ in range(2):
                        response = session.post(f"{base}/api/v1/reward", json={"assignment": body["assignment"]},
                                                timeout=10)
                        assert response.status_code == 202
                        counted = counted or response.json()["counted"]
                return body["assignment"], body["variant"], counted

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(visitor, range(600)))

        assert query(url, "SELECT COUNT(*), COUNT(DISTINCT visitor) FROM assignments")[0] == (600, 600)
        rewarded = query(url, "SELECT COUNT(*), COUNT(DISTINCT assignment_id) FROM rewards")[0]
        assert sum(counted for *_, counted in results) == 200
        assert rewarded == (200, 200)

        # every worker converges on the same posterior and allocation
        time.sleep(0.3)
        seen = policies_by_worker(base, "hero")
        assert len(seen) == 2, "expected both workers to answer"
        versions = {body["model_version"] for body in seen.values()}
        assert versions == {600 + 200}
        allocations = [body["allocation"] for body in seen.values()]
        assert allocations[0] == allocations[1]

        storage = open_storage(url)
        experiment = storage.get_experiment("hero")
        incremental = storage.learning_snapshot(experiment.id)
        storage.rebuild_arm_stats(experiment)
        assert storage.learning_snapshot(experiment.id).model_version == incremental.model_version
        storage.close()


@pytest.mark.slow
def test_a_reward_reaches_every_worker_within_two_seconds(database_url):
    url = database_url
    with gunicorn(url, workers=2, env=ENV) as base:  # default LEVER_REFRESH_MS = 1000
        requests.post(f"{base}/api/v1/experiments", json=experiment_body(), headers=ADMIN)
        body = requests.post(f"{base}/api/v1/assign", json={"experiment": "hero", "visitor": "r1"}).json()
        baseline = policies_by_worker(base, "hero")  # both workers have cached the experiment now
        assert len(baseline) == 2
        rewarded_at = time.monotonic()
        assert requests.post(f"{base}/api/v1/reward", json={"assignment": body["assignment"]}).status_code == 202
        wait_until_every_worker_has(base, "hero", 2, rewarded_at, 2.0)
