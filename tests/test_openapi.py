"""The OpenAPI document: served, valid, complete (every /api/v1 route and /healthz, nothing
else), and built from the app's own limits."""
from __future__ import annotations

import re

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from app import create_app
from app.domain.experiments import KEY_PATTERN, MAX_VARIANTS
from app.web.openapi import PRINTABLE_PATTERN

from .conftest import ADMIN_TOKEN, SECRET_KEY

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _load(document: dict):
    return schemathesis.openapi.from_dict(document, config=SchemathesisConfig())


def test_document_is_valid_openapi(client):
    document = _document(client)
    assert document["openapi"].startswith("3.1")
    _load(document).validate()  # against the OpenAPI 3.1 meta-schema; raises on any violation


def test_the_validity_check_is_not_vacuous(client):
    document = _document(client)
    document["paths"]["/api/v1/assign"]["post"]["responses"]["200"]["description"] = 42
    with pytest.raises(Exception):
        _load(document).validate()


def _flask_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/v1/") or rule.rule == "/healthz"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        methods = set(rule.methods) - {"HEAD"}
        if getattr(rule, "provide_automatic_options", False):
            methods.discard("OPTIONS")  # Flask's automatic answer, not an endpoint of ours
        operations |= {(method.lower(), path) for method in methods}
    return operations


def _documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item if method in METHODS}


def test_every_route_is_documented_and_nothing_else(app, client):
    flask_side = _flask_operations(app)
    documented = _documented_operations(_document(client))
    assert flask_side - documented == set(), "routes missing from app/web/openapi.py"
    assert documented - flask_side == set(), "documented operations the app does not have"
    assert ("post", "/api/v1/assign") in documented and ("get", "/healthz") in documented


def test_admin_operations_need_the_bearer_token(app, client):
    document = _document(client)
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API key (lever_sk_…) or LEVER_ADMIN_TOKEN"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            admin = operation.get("security") == [{"bearerAuth": []}]
            optional = operation.get("security") == [{}, {"bearerAuth": []}]  # reward: by visitor id only
            assert admin == ("admin" in operation["tags"]), (method, path)
            assert ("401" in operation["responses"]) == (admin or optional), (method, path)
            assert ("x-lever-permission" in operation) == admin, (method, path)
            if admin:  # really enforced
                concrete = (path.replace("{key}", "hero").replace("{visitor}", "v-1").replace("{key_id}", "1")
                            .replace("{account_id}", "1").replace("{invitation_id}", "1"))
                response = client.open(concrete, method=method.upper(), json={})
                assert response.status_code == 401, (method, path)


def test_every_error_response_is_the_error_envelope(client):
    document = _document(client)
    components = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    response = components[response["$ref"].rsplit("/", 1)[1]] if "$ref" in response else response
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, (method, path, status)


def test_limits_come_from_the_code_and_the_settings(tmp_path):
    app = create_app({
        "TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'lever.db'}", "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_ENV": "test", "LEVER_MAX_BATCH": 3, "LEVER_MAX_VISITOR_CHARS": 17,
        "LEVER_MAX_CONTEXT_KEYS": 5, "LEVER_MAX_STRING_CHARS": 9,
    })
    try:
        schemas = _document(app.test_client())["components"]["schemas"]
    finally:
        app.extensions["lever.storage"].close()
    single, batched = schemas["AssignRequest"]["oneOf"]
    assert batched["properties"]["experiments"]["maxItems"] == 3
    assert single["properties"]["visitor"]["maxLength"] == 17
    context = schemas["Context"]["anyOf"][0]
    assert context["maxProperties"] == 5
    assert context["additionalProperties"]["anyOf"][0] == {"type": "string", "maxLength": 9,
                                                           "pattern": PRINTABLE_PATTERN}
    definition = schemas["ExperimentDefinition"]["properties"]
    assert definition["key"]["pattern"] == KEY_PATTERN.pattern
    assert definition["variants"]["maxItems"] == MAX_VARIANTS


def test_documented_examples_are_accepted(client, admin):
    """The request examples in the document work as written."""
    document = _document(client)
    definition = document["components"]["schemas"]["ExperimentDefinition"]["example"]
    assert client.post("/api/v1/experiments", json=definition, headers=admin).status_code == 201
    assign = document["paths"]["/api/v1/assign"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/api/v1/assign", json=assign).status_code == 200
    reward = document["paths"]["/api/v1/reward"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/api/v1/reward", json=reward).status_code == 401  # by visitor: needs a key
    assert client.post("/api/v1/reward", json=reward, headers=admin).status_code == 202
    patch = document["paths"]["/api/v1/experiments/{key}"]["patch"]["requestBody"]["content"]["application/json"]
    assert client.patch(f"/api/v1/experiments/{definition['key']}", json=patch["example"],
                        headers=admin).status_code == 200
