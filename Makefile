# Fluoro: `make demo` runs the main job, `make test` passes the tests. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: install browser clang postgres demo test lint typecheck unit fuzz sanitized bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project's dependencies or its C decoder change.
$(STAMP): pyproject.toml setup.py collector/normalize/_otlpfast.c $(wildcard collector/normalize/otlpfast/*.h) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,demo]'
	@$(BIN)/python -c "from collector.normalize.otlp_proto import FAST_DECODER_AVAILABLE as ok; \
	  print('C decoder built' if ok else 'WARNING: C decoder not built (no compiler?); ingest uses the slower Python path')"
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's Chromium (never a downloaded browser).
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium' (Debian)."; \
	fi

# The fuzzer builds the C decoder with clang's sanitizers and libFuzzer (tests/fuzz/).
clang:
	@if command -v clang >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's clang for the sanitized fuzzer"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; \
	else \
	  echo "The fuzzer needs clang: run 'sudo apt-get install clang' (Debian)."; \
	fi

# Lake mode keeps its catalog in PostgreSQL: the tests start throwaway clusters from Debian's server.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's postgresql for the lake-mode tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
	  echo "The lake-mode tests need PostgreSQL's server: run 'sudo apt-get install postgresql' (Debian)."; \
	fi

# A coverage-guided differential fuzzer of the OTLP decoders (ASan + UBSan); new finds go to tests/fuzz/corpus.
FUZZ_SECONDS ?= 300
fuzz: install clang
	$(BIN)/python tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

# The C decoder built by clang with AddressSanitizer, UBSan and libFuzzer coverage (build/fuzz/).
sanitized: install clang
	$(BIN)/python tests/fuzz/sanitized_build.py

demo: install
	$(BIN)/python -m demo_apps.demo_cli all $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Two workers, a test file each at a time (its module fixtures stay on one worker): most of the
# suite waits on the processes it starts, so two halve the wall time on two cores. The tests
# marked serial (a loaded machine changes what they measure) run afterwards, alone.
TEST_WORKERS ?= 2
unit: install browser clang postgres
	$(BIN)/python -m pytest -q --durations=20 -n $(TEST_WORKERS) --dist loadfile -m "not serial" tests
	$(BIN)/python -m pytest -q --durations=5 -m serial tests

test: lint typecheck unit

bench: install
	$(BIN)/python bench/tracer_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build
