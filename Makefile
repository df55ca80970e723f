# storekit-sync: the two commands a newcomer needs (`make run`, `make test`) and the gates.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench soak clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "storekit-sync needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/storekit-sync dev --host 127.0.0.1 --port 8000

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# make bench, or make bench BENCH_ARGS=--quick (--tiny, --duration S, --rate R, --json PATH)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# make soak, or make soak SOAK_ARGS="--minutes 3" (--rate R, --json PATH)
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
