# Set-up and everyday commands. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
DJANGO ?= Django>=5.2,<6
BIN := $(VENV)/bin
PY := $(BIN)/python
DEMO_DIR := example_project
MANAGE := cd $(DEMO_DIR) && ../$(PY) manage.py

.PHONY: demo demo-setup test test-postgres lint package coverage soak bench bench-compare bench-metrics bench-servers bench-publish bench-propagation bench-rollback bench-scale bench-deploy bench-accel clean

$(VENV)/.installed-%: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$*]" "$(DJANGO)"
	touch $@

demo-setup: $(VENV)/.installed-demo
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput --verbosity 0
	$(MANAGE) demo_setup

demo: demo-setup
	$(MANAGE) runserver 127.0.0.1:8000

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

# The gates: lint, format, the import layers (setup.cfg [importlinter]) and types (mypy --strict).
lint: $(VENV)/.installed-test,dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The distributions PyPI gets: build the sdist and the wheel, check their
# metadata and that the README renders as the long description.
package: $(VENV)/.installed-test,dev
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

# The whole suite under branch coverage (gunicorn workers and subprocesses
# included), failing under the floor set in pyproject.toml.
coverage: $(VENV)/.installed-test,dev
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

# The same suite with PostgreSQL as the database (a throwaway server).
test-postgres: $(VENV)/.installed-test
	$(PY) tests/with_postgres.py $(PYTEST_ARGS)

# gunicorn under load while another process publishes every second.
SOAK_SECONDS ?= 60
soak: $(VENV)/.installed-test
	$(PY) benchmarks/soak.py --seconds $(SOAK_SECONDS)

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run.py

# The hit path of this checkout against another commit's: make bench-compare BASELINE=<rev>
bench-compare: $(VENV)/.installed-bench
	$(PY) benchmarks/compare_commits.py --baseline $(BASELINE)

# The hit path with ASSETCACHE_METRICS on against off, interleaved in one run.
bench-metrics: $(VENV)/.installed-bench
	$(PY) benchmarks/metrics_serve_bench.py

# The WSGI fast path under gunicorn sync and gthread, the ASGI adapter under
# uvicorn and granian, and nginx: the table in docs/deployment.md.
bench-servers: $(VENV)/.installed-bench
	$(PY) benchmarks/server_choice.py

bench-publish: $(VENV)/.installed-test
	$(PY) benchmarks/publish_bench.py

bench-propagation: $(VENV)/.installed-test
	$(PY) benchmarks/propagation_bench.py

# Rollback and promote of a 10,000-file site with each invalidation backend.
bench-rollback: $(VENV)/.installed-test
	$(PY) benchmarks/rollback_bench.py

# 10k, 100k and 1M assets on SQLite and PostgreSQL: make bench-scale ARGS=--quick for 10k and 100k,
# ARGS="--sizes 10000 --databases sqlite" to choose.
bench-scale: $(VENV)/.installed-bench
	$(PY) benchmarks/scale_bench.py $(ARGS)

# A 10,000-file site with 10 files changed, deployed by assetcache-deploy and by one zip.
bench-deploy: $(VENV)/.installed-test
	$(PY) benchmarks/deploy_bench.py $(ARGS)

# 10 MiB through nginx + gunicorn with ASSETCACHE_ACCEL = "nginx", against nginx
# serving the file itself and against the same stack without offload.
bench-accel: $(VENV)/.installed-bench
	$(PY) benchmarks/accel_bench.py $(ARGS)

clean:
	rm -rf $(VENV) example_project/var .pytest_cache .coverage .coverage.*
