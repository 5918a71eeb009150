# Set-up and everyday commands. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
DJANGO ?= Django>=5.2,<6
BIN := $(VENV)/bin
PY := $(BIN)/python
DEMO_DIR := example_project
MANAGE := cd $(DEMO_DIR) && ../$(PY) manage.py

.PHONY: demo demo-setup test bench bench-publish clean

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

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run.py

bench-publish: $(VENV)/.installed-test
	$(PY) benchmarks/publish_bench.py

clean:
	rm -rf $(VENV) example_project/var .pytest_cache
