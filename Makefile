# The README's two commands are `make serve` and `make test`; both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install serve demo test check lint typecheck pytest bench bench-http bench-docs soak lock clean

$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "sjti needs Python 3.11 or newer (set PYTHON=python3.x)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

serve: install           ## the reference auth service on SQLite: http://127.0.0.1:8000/docs
	$(BIN)/sjti serve

demo: install            ## issue -> verify both layers -> revoke -> rejected
	$(BIN)/sjti demo

test: check pytest       ## the whole suite: lint, types, tests

check: lint typecheck

lint: install
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

bench: install           ## full benchmark against the peers (sjti bench --quick is tested)
	$(BIN)/sjti bench

bench-http: install      ## /me throughput with and without auth (wrk if installed)
	$(BIN)/python -m sjti.bench.http

bench-docs: install      ## regenerate docs/benchmark.md from a full run
	$(BIN)/sjti bench --markdown docs/benchmark.md

soak: install            ## chaos soak: 3 nodes, private PostgreSQL + Redis, faults (docs/reliability.md)
	$(BIN)/python -m sjti.bench.soak

lock:                    ## refresh requirements-dev.lock from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--output-file requirements-dev.lock --quiet

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
