"""Settings are declared once; unknown or bad ones fail at start; README documents all of them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import create_app
from app.settings import SETTINGS, SettingsError, load_settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_defaults_without_environment():
    values = load_settings(environ={})
    assert values["DATABASE_URL"] == "sqlite:///lever.db"
    assert values["LEVER_REFRESH_MS"] == 1000


@pytest.mark.parametrize("environ, word", [
    ({"LEVER_REFRESH_MSS": "5"}, "unknown setting"),
    ({"LEVER_REFRESH_MS": "soon"}, "LEVER_REFRESH_MS"),
    ({"LEVER_REFRESH_MS": "0"}, "LEVER_REFRESH_MS"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"LEVER_ENV": "staging"}, "LEVER_ENV"),
])
def test_bad_settings_fail_with_a_clear_message(environ, word):
    with pytest.raises(SettingsError, match=word):
        load_settings(environ=environ)


def test_production_refuses_weak_secrets(tmp_path):
    with pytest.raises(SettingsError, match="LEVER_ADMIN_TOKEN"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "LEVER_ENV": "production",
                    "LEVER_ADMIN_TOKEN": "short", "LEVER_SECRET_KEY": "k" * 40})


def test_generated_secrets_are_kept_in_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    first = create_app({"DATABASE_URL": url})
    second = create_app({"DATABASE_URL": url})
    assert len(first.config["LEVER_ADMIN_TOKEN"]) >= 32
    assert first.config["LEVER_ADMIN_TOKEN"] == second.config["LEVER_ADMIN_TOKEN"]
    assert first.config["LEVER_SECRET_KEY"] == second.config["LEVER_SECRET_KEY"]


@pytest.mark.parametrize("setting", [s.name for s in SETTINGS])
def test_every_setting_is_documented(setting):
    assert f"`{setting}`" in README, f"README's settings table lacks {setting}"


def test_every_route_is_documented(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
        assert path in README, f"README does not mention the route {path}"


def test_readme_starts_with_the_two_setup_commands():
    head = README[:1500]
    assert "make run" in head and "make test" in head


def test_sqlite_on_an_ephemeral_filesystem_warns_loudly(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DYNO", "web.1")
    with caplog.at_level("WARNING", logger="lever"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'dyno.db'}"})
    assert any("ALL DATA WILL BE LOST" in record.getMessage() for record in caplog.records)
    caplog.clear()
    monkeypatch.delenv("DYNO")
    with caplog.at_level("WARNING", logger="lever"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'dyno.db'}"})
    assert not any("ALL DATA WILL BE LOST" in record.getMessage() for record in caplog.records)
