"""A pytest plugin for ``controller_cost.py``: the controller's CPU time in the test phase.

Load it with ``-p controllerprobe`` and ``PYTHONPATH=benchmarks``. In the controller (or a
plain run's only) process it takes ``time.process_time()`` at the end of collection
(``pytest_collection_finish``) and again at ``pytest_sessionfinish`` (first), counts the
passing call-phase reports in between, and writes ``{"cpu_seconds", "passed"}`` as JSON to
the path in ``BENCH_CONTROLLER_OUT``. Agent and xdist worker processes write nothing.
"""

from __future__ import annotations

import json
import os
import time

import pytest

_start: float | None = None
_passed = 0


def _is_worker() -> bool:
    return bool(os.environ.get("PYTEST_AGENT_ID") or os.environ.get("PYTEST_XDIST_WORKER"))


def pytest_collection_finish(session: pytest.Session) -> None:
    global _start
    if not _is_worker():
        _start = time.process_time()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _passed
    if report.when == "call" and report.passed:
        _passed += 1


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("BENCH_CONTROLLER_OUT")
    if not path or _is_worker() or _start is None:
        return
    cpu = time.process_time() - _start
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"cpu_seconds": cpu, "passed": _passed}, out)
