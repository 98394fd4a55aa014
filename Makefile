# cpm: the two first commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2

.PHONY: setup demo test lint serve worker beat bench clean

$(STAMP): pyproject.toml scripts/find-python.sh
	@set -e; \
	if [ ! -x $(PY) ]; then \
	  interp=$$(bash scripts/find-python.sh); \
	  echo "Creating $(VENV) with $$interp"; \
	  $$interp -m venv $(VENV); \
	fi; \
	$(PY) -m pip install --quiet --upgrade pip; \
	$(PY) -m pip install --quiet -e '.[dev]'; \
	touch $(STAMP)

setup: $(STAMP)
	@mkdir -p var

demo: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

serve: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runserver --insecure 127.0.0.1:8000

worker: setup
	$(VENV)/bin/celery -A cpm worker -l info

beat: setup
	$(VENV)/bin/celery -A cpm beat -l info

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var
