# Two entry points on a fresh machine that has python3: `make demo` and `make test`.
# Both create the virtualenv and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/reelflow demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not e2e"
	$(BIN)/python -m pytest -m e2e -s -q

bench: $(STAMP)
	$(BIN)/python -m bench
