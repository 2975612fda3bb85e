# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	GX_ANALYTICS_ENABLED=false $(BIN)/depsim demo

# pytest exits 5 when it collects nothing: CI fails then on purpose (a suite that runs no test is broken).
test: $(STAMP)
	GX_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) .depsim .dagster_home
