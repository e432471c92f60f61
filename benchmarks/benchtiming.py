"""A tiny pytest plugin for the benchmarks: when did the first test result arrive?

Load it with ``-p benchtiming`` and ``PYTHONPATH=benchmarks``. At the end of the session the
controller process writes, to the path in ``BENCH_TIMING_OUT``, a JSON object with the
wall-clock (``time.time()``) timestamps of the first ``pytest_runtest_logreport`` whose
``when`` is ``"call"`` (``first_call``) and of the first report of any phase
(``first_report``), or null where none was seen. Agent and xdist worker processes
(``PYTEST_AGENT_ID`` / ``PYTEST_XDIST_WORKER`` set) write nothing.
"""

from __future__ import annotations

import json
import os
import time

import pytest

_first_call: float | None = None
_first_report: float | None = None
_reports = 0


def _is_worker(config: pytest.Config | None = None) -> bool:
    if os.environ.get("PYTEST_AGENT_ID") or os.environ.get("PYTEST_XDIST_WORKER"):
        return True
    return config is not None and hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _first_call, _first_report, _reports
    now = time.time()
    _reports += 1
    if _first_report is None:
        _first_report = now
    if _first_call is None and report.when == "call":
        _first_call = now


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get("BENCH_TIMING_OUT")
    if not path or _is_worker(config):
        return
    data = {
        "pid": os.getpid(),
        "first_call": _first_call,
        "first_report": _first_report,
        "reports": _reports,
        "end": time.time(),
    }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out)
