# Every target bootstraps .venv from pyproject.toml on a fresh machine (only Python 3.11 needed)
# and is quick when .venv is already up to date.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench lint browser clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The full CIFAR-10 beside the project (../shared) is the default data set when nothing else is set.
run: export CIFAR_LAB_DATA ?= $(abspath $(wildcard ../shared/data/cifar10-jpeg))

# Local only (.streamlit/config.toml binds localhost). HOST=0.0.0.0 shares it read-only; WRITE=1 also allows changes.
HOST ?= localhost
WRITE ?=
run: $(STAMP)
	$(VENV)/bin/cifar-lab serve --host $(HOST) $(if $(WRITE),--allow-writes)

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Debian's Chromium for the end-to-end test; skipped quietly where apt is not usable.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 \
	  && apt-get install -y -q chromium >/dev/null 2>&1)) || echo "chromium not installed: the browser test will skip"; }

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
