# Two set-up commands: `make run` (service + demo project) and `make test` (ruff + pytest).
# Both create .venv and install the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
PYTEST_ARGS ?=

.PHONY: install install-dev run test lint format bench-ssl bench-select bench-al bench-churn bench-review bench-loop bench-annotate bench-load bench-label-cpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(RUN_STAMP) $@

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP)

## run: migrate, create demo users and project, start embedded Redis + a worker + the web server
run: $(RUN_STAMP)
	$(PY) manage.py rundemo

## test: lint and the whole test suite
test: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(DEV_STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## benchmarks: each prints a table and writes bench/results/<name>.json
bench-ssl: $(DEV_STAMP)
	$(PY) -m bench.ssl

bench-select: $(DEV_STAMP)
	$(PY) -m bench.select

bench-al: $(DEV_STAMP)
	$(PY) -m bench.al

## bench-churn: how much each part of the learner moves between rounds (the stop rule's kappa), auto and random
bench-churn: $(DEV_STAMP)
	$(PY) -m bench.churn

## bench-review: the Review page's label-mistake finder against cleanlab on planted label noise
bench-review: $(DEV_STAMP)
	$(PY) -m bench.review

bench-loop: $(DEV_STAMP)
	$(PY) -m bench.loop
## bench-annotate: annotators in a closed loop (next + submit) on SQLite (runserver) and PostgreSQL (gunicorn)
bench-annotate: $(DEV_STAMP)
	$(PY) -m bench.annotate
## bench-load: 200 annotators thinking 1-3 s for 10 minutes, PostgreSQL + gunicorn + a real worker (ARGS="--seconds 60" for less)
bench-load: $(DEV_STAMP)
	$(PY) -m bench.load $(ARGS)
## bench-label-cpu: server CPU ms and SQL statements per label (next + submit), in-process, single-threaded
bench-label-cpu: $(DEV_STAMP)
	$(PY) -m bench.label_cpu --labelled 10000 --gunicorn --write $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
