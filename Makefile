# Two entry points for a new machine: `make demo` and `make test`. Each sets up on its own.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint benchmark clean

setup: $(VENV)/.installed

# torch is pinned to the CPU build first (PyTorch's CPU index, else the default index), so the
# package's looser range installs nothing more and no multi-GB CUDA build is pulled.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --retries 0 --timeout 10 torch==2.13.0 \
		--index-url https://download.pytorch.org/whl/cpu \
		|| $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/accelsim run scenarios/quickstart.yaml

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check accelsim tests analysis

# the speed and memory benchmarks of the README's "Speed and memory" section (several minutes)
benchmark: setup
	$(BIN)/python analysis/bench_core.py --images 128 --repeats 3
	$(BIN)/python analysis/bench_chip.py
	$(BIN)/python analysis/bench_sweep.py
	$(BIN)/python analysis/bench_call.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache results
