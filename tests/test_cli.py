"""CLI commands: init-db, create-experiment, seed-demo, simulate, export, show-urls."""
from __future__ import annotations

import json

from app.storage.schema import SCHEMA_VERSION


def test_init_db_is_idempotent(runner):
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0 and f"schema version {SCHEMA_VERSION}" in result.output


def test_create_experiment_from_file(runner, tmp_path, client, admin):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"key": "from-file", "variants": ["control", "b"]}))
    result = runner.invoke(args=["create-experiment", str(path)])
    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/experiments/from-file", headers=admin).status_code == 200
    again = runner.invoke(args=["create-experiment", str(path)])
    assert again.exit_code != 0 and "exists already" in again.output
    path.write_text("{not json")
    assert runner.invoke(args=["create-experiment", str(path)]).exit_code != 0


def test_seed_demo_only_on_an_empty_database(runner, client, admin):
    assert "seeded demo" in runner.invoke(args=["seed-demo"]).output
    assert "not seeded" in runner.invoke(args=["seed-demo"]).output
    experiments = client.get("/api/v1/experiments", headers=admin).get_json()["experiments"]
    assert [e["key"] for e in experiments] == ["homepage-hero"]


def test_simulate_fills_the_log_and_export_writes_it(runner, client, admin):
    runner.invoke(args=["seed-demo"])
    result = runner.invoke(args=["simulate", "homepage-hero", "--visitors", "300", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "simulated 300 visitors" in result.output
    exported = runner.invoke(args=["export", "homepage-hero"])
    lines = exported.output.strip().splitlines()
    assert lines[0].startswith("id,visitor,variant") and len(lines) == 301
    assert runner.invoke(args=["simulate", "missing"]).exit_code != 0


def test_show_urls_prints_the_admin_token(runner, app):
    result = runner.invoke(args=["show-urls", "--base-url", "http://127.0.0.1:9999"])
    assert app.config["LEVER_ADMIN_TOKEN"] in result.output
    assert "http://127.0.0.1:9999/healthz" in result.output
