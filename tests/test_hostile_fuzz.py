"""Property-based hostile input (Hypothesis) over the public request bodies and the admin
experiment definition, through the Flask test client.

Every answer is a 4xx JSON error of the documented shape or a success, never a 5xx, and
always strict JSON (NaN/Infinity refused as strict parsers do). After each batch, and every
``CHECK_EVERY`` examples within it, every experiment still works: assign, reward, stats,
policy, visitor export and erasure all 2xx with strict JSON. Each example (derandomised:
the same corpus on every run) is sent to SQLite and, when TEST_DATABASE_URL is set,
PostgreSQL side by side, and both must answer with the same status and error code, so
the backends cannot drift apart. Extreme numbers (1e308, subnormals, -0.0, huge integers),
NaN/Infinity literals in the raw text, non-ASCII, control characters, lone surrogates,
deep nesting and wrong types are all in the corpus.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import ExitStack
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app import create_app

from .conftest import ADMIN_TOKEN, SECRET_KEY
from .dbutil import TEST_DATABASE_URL_ENV, backends, fresh_schema
from .hostile import assert_error, assert_still_works, strict_json

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: a placeholder for assignment token i of the backend the example is sent to
TOKEN = re.compile(r"@@token(\d+)@@")

#: examples per test and backend: the whole file stays within ~60 s on both backends
EXAMPLES = 120
CHECK_EVERY = 50
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EXPERIMENTS = {
    "num": {"reward": "numeric", "variants": ["a", "b"]},
    "bin": {"variants": ["a", "b", "c"]},
    "ab": {"mode": "ab", "variants": ["a", "b"], "weights": [1, 3]},
    "ctx": {"mode": "contextual", "reward": "numeric", "variants": ["a", "b"],
            "context": [{"name": "price", "type": "numeric", "min": 0, "max": 100},
                        {"name": "device", "type": "categorical", "levels": ["mobile", "desktop"]}]},
}
#: number literals as raw JSON text: what json.dumps of a Python float never writes
LITERALS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400", "1E+308", "-1e308", "1e308",
            "1.7976931348623157e308", "5e-324", "-0.0", "0", "1e9", "1000000000.0000001", "-1e9", "1" * 300,
            "-" + "9" * 40, "2.5", "1e15", "123456789012345678901234567890"]

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e10, max_value=1e10),
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.sampled_from([1e308, -1e308, 5e-324, -5e-324, -0.0, 1e9, -1e9, 1e9 + 1, 2.0 ** 53, 2 ** 64, 10 ** 308]),
)
texts = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(max_codepoint=0x9f), max_size=8),  # ASCII, C0 and C1 controls, DEL
    st.sampled_from(["", " ", "a\u0000b", "\u0085", "日本", "🙂", "x" * 201, "e\u0301", "\u202e", "v-1"]),
)
#: a string with a control character (C0, DEL or C1) somewhere in it
CONTROLS = ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]
with_control = st.tuples(st.text(max_size=5), st.sampled_from(CONTROLS), st.text(max_size=5)).map("".join)
texts = texts | with_control
values = st.recursive(st.none() | st.booleans() | numbers | texts,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=6)
keys = st.sampled_from([*EXPERIMENTS, "missing", "Not A Key", ""]) | texts
contexts = st.one_of(st.dictionaries(st.sampled_from(["price", "device", "hour"]) | texts,
                                     numbers | texts | st.booleans() | st.none(), max_size=4), values)


def _raw(body: dict[str, Any], literal: str | None) -> str:
    """The body as JSON text, with one number (if any) replaced by a raw literal."""
    text = json.dumps(body, allow_nan=True)
    marker = "0.123456789"
    if literal is not None and marker in text:
        text = text.replace(marker, literal, 1)
    return text


def _optional(**fields) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


assign_bodies = st.one_of(
    _optional(experiment=keys, visitor=texts | values, context=contexts, extra=values),
    st.fixed_dictionaries({"experiment": keys, "visitor": texts, "context": contexts}),
    st.fixed_dictionaries({"experiments": st.lists(keys, max_size=4) | values, "visitor": texts}),
    st.fixed_dictionaries({"experiment": st.sampled_from(list(EXPERIMENTS)), "visitor": texts,
                           "context": st.fixed_dictionaries({"price": st.just(0.123456789)})}),
    st.fixed_dictionaries({"experiment": st.sampled_from(list(EXPERIMENTS)), "visitor": with_control}),
)

raw_texts = st.one_of(
    st.integers(1, 5000).map(lambda n: '{"experiment": "num", "visitor": ' + "[" * n + "]" * n + "}"),
    st.integers(1, 5000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(['{"experiment": "num", "visitor": "a\\ud800b"}', '{"experiment": "num", "visitor": "\\udfff"}',
                     '{"experiment": "num", "visitor": "v", "context": {"\\ud83d": 1}}', "", "null", "[]", "1",
                     '"\\u0000"', "{", '{"experiment": "num", "visitor": "v", "visitor": "w"}',
                     '{"experiment": "num", "visitor": "\u00e9"}']),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


def check(response) -> Any:
    """Never a 5xx; errors in the documented shape; every body strict JSON."""
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:400])
    if response.status_code >= 400:
        return assert_error(response)
    return strict_json(response) if response.get_data() else None


@pytest.fixture
def backends_apps(tmp_path) -> Iterator[list[tuple[str, Any]]]:
    """One app per backend (SQLite file; PostgreSQL when TEST_DATABASE_URL is set): every example
    is sent to both, side by side."""
    with ExitStack() as stack:
        apps = []
        for backend in backends():
            url = (f"sqlite:///{tmp_path / 'lever.db'}" if backend == "sqlite"
                   else stack.enter_context(fresh_schema(os.environ[TEST_DATABASE_URL_ENV])))
            app = create_app({"TESTING": True, "DATABASE_URL": url, "LEVER_ADMIN_TOKEN": ADMIN_TOKEN,
                              "LEVER_SECRET_KEY": SECRET_KEY, "LEVER_REFRESH_MS": 50, "LEVER_ENV": "test",
                              "LEVER_RATE_LIMIT": ""})
            stack.callback(app.extensions["lever.storage"].close)
            apps.append((backend, app.test_client()))
        yield apps


class Batch:
    """Sends each example to every backend, checks each answer and that the backends agree (status
    and error code), and checks every experiment every ``CHECK_EVERY`` examples."""

    def __init__(self, apps: list[tuple[str, Any]]) -> None:
        self.apps, self.seen = apps, 0
        self.tokens: dict[str, list[str]] = {}
        for backend, client in apps:
            for key, definition in EXPERIMENTS.items():
                created = client.post("/api/v1/experiments", json={"key": key, **definition}, headers=ADMIN)
                assert created.status_code == 201, created.get_json()
            self.tokens[backend] = [
                client.post("/api/v1/assign", json={"experiment": key, "visitor": visitor,
                                                    "context": {"price": 5}}).get_json()["assignment"]
                for key in EXPERIMENTS for visitor in ("t1", "t2")]

    def post(self, path: str, text: str, headers: dict[str, str] | None = None) -> list[Any]:
        found, outcomes = [], []
        for backend, client in self.apps:
            sent = TOKEN.sub(lambda m: self.tokens[backend][int(m.group(1))], text)
            response = client.post(path, data=sent.encode("utf-8", "surrogatepass"),
                                   content_type="application/json", headers=headers or {})
            body = check(response)
            found.append(body)
            outcomes.append((response.status_code, body.get("code") if response.status_code >= 400 else None))
        assert len(set(outcomes)) == 1, f"the backends disagree on {text[:200]!r}: {outcomes}"
        self.seen += 1
        if self.seen % CHECK_EVERY == 0:
            self.all_still_work()
        return found

    def all_still_work(self) -> None:
        for _backend, client in self.apps:
            for key in EXPERIMENTS:
                assert_still_works(client, ADMIN, key, value=1)


def fuzz_bodies(apps: list[tuple[str, Any]], path: str, bodies: st.SearchStrategy,
                known: list[tuple[dict[str, Any], str | None]]) -> None:
    """POST ``bodies`` (one number maybe replaced by a raw literal) to ``path``; ``known``: (body,
    literal) examples that always run first (the reported defects)."""
    batch = Batch(apps)

    def run(body: dict[str, Any], literal: str | None) -> None:
        batch.post(path, _raw(body, literal))

    test = given(body=bodies, literal=st.none() | st.sampled_from(LITERALS))(run)
    for body, literal in known:
        test = example(body=body, literal=literal)(test)
    FUZZ(test)()
    batch.all_still_work()


def test_assign_bodies(backends_apps):
    fuzz_bodies(backends_apps, "/api/v1/assign", assign_bodies, [
        ({"experiment": "num", "visitor": "a\x00b"}, None),  # the reported defect (PostgreSQL)
        ({"experiment": "ctx", "visitor": "v", "context": {"price": 0.123456789}}, "1e308"),
    ])


def test_reward_bodies(backends_apps):
    tokens = st.integers(0, 2 * len(EXPERIMENTS) - 1).map(lambda i: f"@@token{i}@@")
    reward_bodies = st.one_of(
        _optional(assignment=tokens | texts | values, value=numbers | values, event_id=texts | values,
                  experiment=keys, visitor=texts),
        st.fixed_dictionaries({"assignment": tokens, "value": numbers}, optional={"event_id": texts}),
        st.fixed_dictionaries({"assignment": tokens, "value": st.just(0.123456789)}),
        st.fixed_dictionaries({"assignment": tokens, "value": numbers, "event_id": with_control}),
        st.fixed_dictionaries({"experiment": st.sampled_from(list(EXPERIMENTS)), "visitor": st.sampled_from(["t1", "t2"]),
                               "value": numbers | st.just(0.123456789)}, optional={"event_id": texts}),
    )
    fuzz_bodies(backends_apps, "/api/v1/reward", reward_bodies, [
        ({"experiment": "num", "visitor": "t1", "value": 0.123456789}, "1e308"),  # the reported defect
        ({"experiment": "num", "visitor": "t2", "value": 1, "event_id": "e\x00"}, None),
    ])


def test_raw_request_texts(backends_apps):
    batch = Batch(backends_apps)

    @FUZZ
    @given(text=raw_texts, path=st.sampled_from(["/api/v1/assign", "/api/v1/reward", "/api/v1/experiments"]))
    def run(text, path):
        batch.post(path, text, ADMIN if path.endswith("experiments") else None)

    run()
    batch.all_still_work()


feature = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(["price", "x"]) | texts, "type": st.just("numeric"),
                           "min": numbers, "max": numbers}),
    st.fixed_dictionaries({"name": st.just("device"), "type": st.just("categorical"),
                           "levels": st.lists(texts, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"name": st.just("hour"), "type": st.just("cyclic"), "period": numbers}),
    st.fixed_dictionaries({"name": st.just("h"), "type": st.just("hashed"), "buckets": numbers}),
    values,
)
experiment_bodies = st.fixed_dictionaries(
    {"key": st.from_regex(r"\Afz[a-z0-9]{1,6}\Z") | texts, "variants": st.sampled_from([["a", "b"], ["a", "b", "c"]])
     | values},
    optional={"mode": st.sampled_from(["bandit", "ab", "contextual"]) | values,
              "reward": st.sampled_from(["binary", "numeric"]), "name": texts, "holdout": numbers,
              "min_share": numbers, "reward_window_s": numbers, "weights": st.lists(numbers, max_size=3) | values,
              "context": st.lists(feature, max_size=2), "decay": st.fixed_dictionaries({"half_life_s": numbers}),
              "max_abs_value": numbers | values, "allowed_origins": st.lists(texts, max_size=2), "sticky": values},
)


def test_experiment_definitions(backends_apps):
    """Hostile definitions (an admin's mistakes): refused with a 4xx, or created and then working."""
    batch = Batch(backends_apps)

    @FUZZ
    @given(body=experiment_bodies, context=contexts, value=numbers)
    def run(body, context, value):
        created = batch.post("/api/v1/experiments", json.dumps(body, allow_nan=True), ADMIN)[0]
        if not isinstance(created, dict) or "key" not in created:
            return
        key = created["key"]
        batch.post("/api/v1/assign", json.dumps({"experiment": key, "visitor": "f", "context": context}))
        batch.post("/api/v1/reward", json.dumps({"experiment": key, "visitor": "f", "value": value}))
        for _backend, client in backends_apps:
            for path in (f"/api/v1/experiments/{key}/stats", f"/api/v1/experiments/{key}/policy"):
                response = client.get(path, headers=ADMIN)
                assert response.status_code == 200, (path, response.get_data(as_text=True)[:400])
                strict_json(response)

    run()
    batch.all_still_work()
