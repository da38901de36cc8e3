# The README's two commands are `make serve` and `make test`; both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install serve demo test check lint typecheck pytest browser mutate bench bench-http bench-docs soak lock clean

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

pytest: install browser
	$(BIN)/pytest

browser:                 ## Chromium for the web pages' browser tests (Debian package; as root, else they skip)
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

mutate: install          ## mutation testing of the security core, from a copy in build/mutate (docs/testing.md)
	rm -rf build/mutate && mkdir -p build/mutate && cp -a pyproject.toml src tests build/mutate/
	if [ -d ../shared ]; then ln -s "$$(cd .. && pwd)/shared" build/mutate/shared; fi
	cd build/mutate && start=$$(date +%s) && \
		{ $(CURDIR)/$(BIN)/mutmut run --max-children "$$(nproc)" > run.log 2>&1 || \
		  { tail -n 40 run.log; exit 1; }; } && \
		echo "mutmut run: $$(( $$(date +%s) - start )) s" && \
		$(CURDIR)/$(BIN)/mutmut results --all true > results.txt
	@printf "%-34s %6s %7s %8s %8s %8s\n" module total killed timeout survived "no tests"
	@awk -F': ' '{ m = $$1; sub(/^ +/, "", m); sub(/\.x(_|ǁ).*/, "", m); t[m]++; c[m, $$2]++ } \
		END { for (m in t) printf "%-34s %6d %7d %8d %8d %8d\n", m, t[m], c[m, "killed"], \
		c[m, "timeout"], c[m, "survived"], c[m, "no tests"] }' build/mutate/results.txt | sort
	@cd build/mutate && grep -vE ': (killed|timeout)$$' results.txt | sed 's/^ *//; s/: .*//' | sort > found && \
		sed -n 's/^- `\([^`]*\)`.*/\1/p' $(CURDIR)/docs/mutation-survivors.md | sort > listed && \
		comm -23 found listed > new && comm -13 found listed > stale && \
		if [ -s new ] || [ -s stale ]; then \
		  sed 's/^/new survivor (add a test, or list it with its reason): /' new; \
		  sed 's/^/listed but no longer surviving (remove it): /' stale; \
		  echo "see docs/testing.md; inspect one with: cd build/mutate && ../../$(BIN)/mutmut show NAME"; \
		  exit 1; \
		fi && echo "every surviving mutant is listed in docs/mutation-survivors.md"

bench: install           ## full benchmark against the peers (sjti bench --quick is tested)
	$(BIN)/sjti bench

bench-http: install      ## sjti vs fastapi-users over HTTP: SQLite x1, PostgreSQL+Redis x2 (wrk if installed)
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
