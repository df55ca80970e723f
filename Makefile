# storekit-sync: the two commands a newcomer needs (`make run`, `make test`) and the gates.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TOOLS  := $(VENV)/tools
PORT ?= 8000
SIMULATOR_PORT ?= 9000
# Both lock files: one universal resolution (Python 3.11+, Linux, macOS), every file's hash.
LOCK   := --universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command 'make lock'
BUILD  := echo 'setuptools>=77,<90  \# the build backend, to install the project without building in isolation'

.PHONY: install run test lint lock format bench soak clean

# Exactly the versions of requirements-dev.lock, every download checked against its hash.
$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "storekit-sync needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/storekit-sync dev --host 127.0.0.1 --port $(PORT) --simulator-port $(SIMULATOR_PORT)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

# After changing a dependency in pyproject.toml, or to take newer releases within its ranges:
# resolves afresh from PyPI (uv, in a tools venv of its own); then `make install` installs it.
lock:
	@test -x $(TOOLS)/bin/uv || ($(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install --quiet 'uv>=0.9,<1')
	$(BUILD) | $(TOOLS)/bin/uv pip compile pyproject.toml - $(LOCK) -o requirements.lock
	$(BUILD) | $(TOOLS)/bin/uv pip compile pyproject.toml - --extra dev -c requirements.lock $(LOCK) \
	  -o requirements-dev.lock

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
