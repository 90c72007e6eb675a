# The two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
HOST ?= 127.0.0.1

.PHONY: run test lint format bench install install-dev node seed migrate clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: node_modules/.installed

migrate: install
	$(PY) -m services.db.migrate

seed: migrate
	$(PY) -m services.seed --scale demo

## Set up, migrate, seed demo data (once), serve on $(PORT) in demo mode unless [auth] is configured.
run: seed
	$(VENV)/bin/streamlit run streamlit_app.py --server.port $(PORT) --server.address $(HOST)

## The whole suite: lint, then every test (PostgreSQL tests need a server: see README).
test: install-dev node lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install-dev
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf .marketplace node_modules $(VENV)
