# Two entry points: `make demo` and `make test`. Both create .venv at the repo root when missing.
# TORCH pins the CPU build that ships with this machine; override for a GPU build, e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
TORCH ?= torch==2.13.0
QPTH ?= qpth==0.0.18
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-all lint bench clean install install-dev

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# Stamps make repeated runs cheap; they are refreshed when the package metadata changes.
$(VENV)/.installed: $(PY) setup.cfg pyproject.toml Makefile
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps $(QPTH)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(PY) -m constrained_pairs demo

test: install-dev
	$(PY) -m pytest

test-all: install-dev
	$(PY) -m pytest -m ""

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	for b in benchmarks/[a-z]*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
