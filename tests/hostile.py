"""Shared checks of the hostile-input tests: strict JSON, the error shape, and "the experiment
still works" (assign, reward, stats, policy, visitor export and erasure all 2xx, strict JSON)."""
from __future__ import annotations

import itertools
import json
from typing import Any

_serial = itertools.count()


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name} in a response")


def strict_json(response) -> Any:
    """The body parsed as standard JSON (NaN, Infinity and -Infinity refused, as strict parsers do)."""
    return json.loads(response.get_data(as_text=True), parse_constant=_refuse_constant)


def assert_error(response, status: int | None = None, code: str | None = None) -> dict:
    """A 4xx ``{"error": {"code", "message"}}`` answer (the given status and code when named)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    if status is not None:
        assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = strict_json(response)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def assert_still_works(client, admin: dict[str, str], key: str, value: float = 1.0) -> None:
    """Every operation on experiment ``key`` answers 2xx with strict JSON."""
    visitor = f"still-works-{next(_serial)}"
    assigned = client.post("/api/v1/assign", json={"experiment": key, "visitor": visitor})
    assert assigned.status_code == 200, assigned.get_data(as_text=True)[:300]
    token = strict_json(assigned)["assignment"]
    rewarded = client.post("/api/v1/reward", json={"assignment": token, "value": value})
    assert rewarded.status_code == 202, rewarded.get_data(as_text=True)[:300]
    strict_json(rewarded)
    for path in (f"/api/v1/experiments/{key}/stats", f"/api/v1/experiments/{key}/policy",
                 f"/api/v1/experiments/{key}", f"/api/v1/visitors/{visitor}"):
        response = client.get(path, headers=admin)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
        strict_json(response)
    erased = client.delete(f"/api/v1/visitors/{visitor}", headers=admin)
    assert erased.status_code == 200, erased.get_data(as_text=True)[:300]
    assert strict_json(erased)["erased_assignments"] == 1
