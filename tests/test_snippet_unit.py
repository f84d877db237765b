"""GET /lever.js (headers, ETag, 304, gzip budget, ES2017 and "no console" guards) and GET /demo,
through the Flask test client. The browser behaviour is in test_snippet_browser.py."""
from __future__ import annotations

import gzip
import re

import pytest

from app.service.demo import DEMO_EXPERIMENT
from app.web.snippet import SOURCE, compact

BUDGET_GZIP_BYTES = 4608  # 4.5 KB: assign, rewards and the event queue


def test_lever_js_is_javascript_with_validators_and_a_short_public_cache(client):
    response = client.get("/lever.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert re.fullmatch(r'"[0-9a-f]{20}"', response.headers["ETag"])  # strong, a content hash
    assert "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"/api/v1/assign" in response.data and b"/api/v1/reward" in response.data
    assert b"/api/v1/events" in response.data


def test_if_none_match_answers_304_and_another_etag_200(client):
    etag = client.get("/lever.js").headers["ETag"]
    again = client.get("/lever.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == "public, max-age=300"
    assert client.get("/lever.js", headers={"If-None-Match": f"W/{etag}"}).status_code == 304  # weak comparison
    assert client.get("/lever.js", headers={"If-None-Match": '"something-else"'}).status_code == 200
    assert client.head("/lever.js").status_code == 200


def test_gzip_representation_has_its_own_etag_and_fits_the_budget(client):
    plain = client.get("/lever.js")
    packed = client.get("/lever.js", headers={"Accept-Encoding": "gzip, deflate"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == plain.data
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert client.get("/lever.js", headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]}
                      ).status_code == 304
    assert len(packed.data) <= BUDGET_GZIP_BYTES, f"lever.js is {len(packed.data)} bytes gzipped"
    assert len(gzip.compress(plain.data, 9)) <= BUDGET_GZIP_BYTES
    assert "Content-Encoding" not in client.get("/lever.js", headers={"Accept-Encoding": "gzip;q=0"}).headers


def test_etag_changes_with_the_content(client):
    from app.web.snippet import snippet_asset
    first = snippet_asset()
    assert first.etag == snippet_asset().etag  # cached while the file is unchanged
    assert client.get("/lever.js").headers["ETag"] == f'"{first.etag}"'


def test_the_served_file_keeps_code_and_drops_only_comment_lines():
    source = SOURCE.read_text()
    served = compact(source)
    assert served.startswith("/*! Lever snippet")
    assert not any(line.lstrip().startswith("//") for line in served.splitlines())
    code = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("//")]
    assert served.splitlines() == code


def test_source_is_es2017_and_safe_to_compact():
    source = SOURCE.read_text()
    # compact() is only safe without multi-line literals
    assert "`" not in source, "no template literals (compact() strips indentation line by line)"
    assert not re.search(r"\\$", source, re.M), "no line continuations"
    # syntax newer than ES2017
    assert "?." not in source.replace("? .", ""), "optional chaining is ES2020"
    assert "??" not in source, "nullish coalescing is ES2020"
    assert not re.search(r"catch\s*\{", source), "optional catch binding is ES2019"
    assert not re.search(r"\.\.\.\w", source), "object spread is ES2018 (arrays are fine, but keep it simple)"
    assert not re.search(r"\b(import|export)\b\s", source), "a classic script, not a module"
    assert ".flat(" not in source and "fromEntries" not in source and "matchAll" not in source
    # no console noise
    assert "console." not in source


def test_demo_page_is_personalised_by_the_seeded_experiment(client, runner):
    assert "seeded" in runner.invoke(args=["seed-demo"]).output
    response = client.get("/demo")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    control = DEMO_EXPERIMENT["variants"][0]["payload"]
    key = DEMO_EXPERIMENT["key"]
    assert f'data-lever-experiment="{key}"' in html and f'data-lever-goal="{key}"' in html
    for field in ("headline", "offer", "cta"):
        assert f'data-lever-field="{field}"' in html
        assert control[field] in html  # the control's text, before lever.js runs
    assert f'href="/experiments/{key}"' in html
    nonce = re.search(r'<script src="/lever.js" data-auto="pageview clicks dwell" nonce="([^"]+)" async>', html).group(1)
    assert 'data-lever-track="report_link"' in html
    policy = response.headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" in policy and "default-src 'none'" in policy
    # no external resources: every src and href stays on this origin
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert not re.match(r"^(?:[a-z]+:)?//", url), url


def test_demo_renders_the_control_text_without_the_experiment(client):
    html = client.get("/demo").get_data(as_text=True)
    control = DEMO_EXPERIMENT["variants"][0]["payload"]
    assert control["headline"] in html and control["cta"] in html
    assert "data-lever-experiment" not in html and "data-lever-goal=" not in html
    assert "seed-demo" in html


def test_demo_uses_the_stored_control_text(make_experiment, client):
    make_experiment(DEMO_EXPERIMENT["key"], variants=[
        {"key": "control", "payload": {"headline": "Plan <less>, ship more", "cta": "Try it"}},
        {"key": "b", "payload": {"headline": "B"}},
    ])
    html = client.get("/demo").get_data(as_text=True)
    assert "Plan &lt;less&gt;, ship more" in html and ">Try it<" in html
    assert DEMO_EXPERIMENT["variants"][0]["payload"]["offer"] in html  # missing field: the default


@pytest.mark.parametrize("path", ["/lever.js", "/demo"])
def test_snippet_routes_answer_to_get_only(client, path):
    assert client.post(path).status_code == 405
