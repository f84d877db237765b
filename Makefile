# Two commands for a new user: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000
export FLASK_APP := app

BENCH_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test wrk bench bench-postgres bench-stats bench-report bench-bandits bench-bandits-http bench-metrics bench-inprocess init-db clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed clients/python/pyproject.toml $(wildcard clients/python/lever_client/*)
	$(PIP) install --quiet -e '.[test]'
	$(PIP) install --quiet ./clients/python
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PIP) install --quiet -e '.[test,bench]'
	# obp 0.5.7 declares Python < 3.11 and pulls torch; we only read its bundled dataset sample
	$(PIP) install --quiet --no-deps --ignore-requires-python obp==0.5.7
	touch $@

init-db: $(VENV)/.installed
	$(VENV)/bin/flask init-db

run: $(VENV)/.installed
	$(VENV)/bin/flask init-db
	$(VENV)/bin/flask seed-demo
	$(VENV)/bin/flask show-urls --base-url http://$(HOST):$(PORT)
	$(VENV)/bin/gunicorn --config gunicorn.conf.py --bind $(HOST):$(PORT) 'app:create_app()'

test: $(VENV)/.installed-test
	$(PY) -m pytest -q $(PYTEST_ARGS)

wrk:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

# the old worker model (sync workers, a transaction per request), measured beside the default one
BENCH_OLD_MODEL := --variant 'sync-per-request-commit:GUNICORN_WORKER_CLASS=sync,LEVER_GROUP_COMMIT=false'

bench: $(VENV)/.installed-test wrk  # HTTP load on SQLite: assign and reward beside bare Flask and healthz
	$(PY) benchmarks/http_load.py --connections 16 64 $(BENCH_OLD_MODEL) $(BENCH_ARGS)

bench-postgres: $(VENV)/.installed-test wrk  # the same on PostgreSQL (fresh schemas, dropped afterwards), 1 and 2 instances
	$(PY) benchmarks/http_load.py --connections 16 64 --database-url $(BENCH_DATABASE_URL) --instances 2 \
		$(BENCH_OLD_MODEL) $(BENCH_ARGS)

bench-stats: $(VENV)/.installed-test  # stats of an experiment with 10 million assignments
	$(PY) benchmarks/stats_scale.py

bench-report: $(VENV)/.installed-test  # report page of an experiment with 1 million assignments
	$(PY) benchmarks/report_render.py

bench-metrics: $(VENV)/.installed-test  # stats of an experiment with 5 metrics at scale (SQLite; add DATABASE_URL for PostgreSQL)
	$(PY) benchmarks/metrics_scale.py

bench-inprocess: $(VENV)/.installed-test  # one assign and one reward through the Flask app, no network
	$(PY) benchmarks/assign_inprocess.py

bench-bandits: $(VENV)/.installed-bench
	$(PY) benchmarks/bandits_bench.py

bench-bandits-http: $(VENV)/.installed-bench  # contextual regret through the HTTP API and its refresh cadence
	$(PY) benchmarks/bandits_http.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
