# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean sshd

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	cd examples/demo && ../../$(PY) -m pytest --agents auto --agents-plan -q
	cd examples/demo && ../../$(PY) -m pytest --agents auto --agents-metrics metrics.json
	@echo "--- examples/demo/metrics.json ---"
	@cat examples/demo/metrics.json

lint: $(STAMP)
	$(VENV)/bin/ruff check pytest_parallel_agents tests examples benchmarks
	$(VENV)/bin/ruff format --check pytest_parallel_agents tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy pytest_parallel_agents

# The remote-agent tests need OpenSSH; the tests start and stop their own sshd.
sshd:
	@if [ -z "$$PYTEST_AGENTS_NO_SSH" ]; then sh tests/install_sshd.sh; fi

# The project's own suite runs under its own plugin (dogfood).
pytest: $(STAMP) sshd
	$(PY) -m pytest --agents auto

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
