# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean sshd compat compat-python ecosystem-venv postgres tmux chromium realworld realworld-quick

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

# The plan, a plain run and a parallel run side by side, the report's path (examples/demo/show.py).
demo: $(STAMP)
	cd examples/demo && ../../$(PY) show.py

lint: $(STAMP)
	$(VENV)/bin/ruff check pytest_parallel_agents tests examples benchmarks
	$(VENV)/bin/ruff format --check pytest_parallel_agents tests examples benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy pytest_parallel_agents

# The remote-agent tests need OpenSSH; the tests start and stop their own sshd.
sshd:
	@if [ -z "$$PYTEST_AGENTS_NO_SSH" ]; then sh tests/install_sshd.sh; fi

# tests/e2e/ecosystem/ runs real third-party plugins (pinned in tests/e2e/ecosystem/requirements.txt)
# in a venv of their own, never in .venv, where the suite's pytester runs would load them.
ECO_VENV := .venv-ecosystem
ECO_STAMP := $(ECO_VENV)/.installed

$(ECO_STAMP): pyproject.toml tests/e2e/ecosystem/requirements.txt
	$(PYTHON) -m venv $(ECO_VENV)
	$(ECO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ECO_VENV)/bin/python -m pip install --quiet -e . -r tests/e2e/ecosystem/requirements.txt
	touch $(ECO_STAMP)

ecosystem-venv:
	@if [ -z "$$PYTEST_AGENTS_NO_ECOSYSTEM" ]; then $(MAKE) --no-print-directory $(ECO_STAMP); fi

# The pytest-django ecosystem test needs PostgreSQL's binaries; it starts its own cluster.
postgres:
	@if [ -z "$$PYTEST_AGENTS_NO_ECOSYSTEM$$PYTEST_AGENTS_NO_POSTGRES" ]; then \
		sh tests/e2e/ecosystem/install_postgres.sh; fi

# tests/e2e/test_fidelity_interrupt.py types Ctrl-C into a real terminal: tmux, on a private socket.
tmux:
	@command -v tmux >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq tmux >/dev/null; \
		else sudo -n apt-get install -y -qq tmux >/dev/null; fi; }

# tests/e2e/test_report_browser.py opens the HTML report in a real headless Chromium.
chromium:
	@if [ -z "$$PYTEST_AGENTS_NO_CHROMIUM" ]; then \
		command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq chromium >/dev/null; \
		else sudo -n apt-get install -y -qq chromium >/dev/null; fi; }; fi

# The project's own suite runs under its own plugin (dogfood).
pytest: $(STAMP) sshd ecosystem-venv postgres tmux chromium
	$(PY) -m pytest --agents auto

test: lint typecheck pytest

# The other end of what pyproject.toml declares: the oldest Python (3.10) with pytest 8, in a
# venv of its own. `.ci/run` runs it wherever a Python 3.10 is found (PATH, then pyenv).
ifndef COMPAT_PYTHON
COMPAT_PYTHON = $(shell for p in $$(command -v python3.10) $(HOME)/.pyenv/versions/3.10*/bin/python3; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo "$$p"; break; }; done)
endif
COMPAT_VENV := .venv-compat

compat-python:
	@echo $(COMPAT_PYTHON)

compat: sshd tmux chromium
	@if [ -z "$(COMPAT_PYTHON)" ]; then \
		echo "make compat: no Python 3.10 found; set COMPAT_PYTHON=/path/to/python3.10" >&2; \
		exit 4; fi
	$(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install --quiet -e '.[test]' 'pytest>=8,<9'
	$(COMPAT_VENV)/bin/python -m pytest --agents auto

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Real projects' suites (realworld/corpus.py), plain vs --agents, test by test (docs/fidelity.md).
# Each project gets its own venv under .realworld/ (not .venv); PyPI is needed the first time.
# REALWORLD_ARGS passes options on, e.g. REALWORLD_ARGS='--plugin-ref HEAD' or '--only click'.
REALWORLD_ARGS ?=
realworld:
	$(PYTHON) realworld/run.py $(REALWORLD_ARGS)

realworld-quick:
	$(PYTHON) realworld/run.py --quick $(REALWORLD_ARGS)

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(ECO_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
