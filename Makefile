# Two commands on a fresh machine: `make train` and `make test` (see README.md).
# The virtual environment is installed from requirements.lock (exact versions), then seqjax
# itself without dependencies; pyproject.toml keeps the lower bounds.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install train test test-fast lint bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## the embedded default experiment (sequence basics: parity), about a minute on a laptop CPU
train: $(STAMP)
	$(BIN)/seqjax train

## the test suite (README's test command)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

## the suite without the tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check seqjax tests experiments benchmarks scripts

## experiments/results/bench.md: seqjax against PyTorch (CPU wheel) and flax nn.RNN, side by side
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python benchmarks/bench_peers.py --write experiments/results/bench.md

## re-resolve requirements.lock from pyproject.toml's bounds (newest versions that fit)
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python $(BIN)/python \
	  --custom-compile-command "make lock" -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
