"""A pytest plugin for ``tail.py``: what the controller hands out, when, and at what cost.

Load it with ``-p tailprobe`` and ``PYTHONPATH=benchmarks``. In the controller process it
wraps ``SuiteQueue.top_up`` (the one call by which the controller hands tests to an agent)
and records, per call, the time, the agent, what it held, the batch size, the tests left
pending and the call's own cost; it also records when each test's call-phase report came
back. At the end of the session it writes them as JSON to the path in ``BENCH_TAIL_OUT``.
Agent processes (``PYTEST_AGENT_ID`` set) record and write nothing.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import pytest

_calls: list[tuple[float, str, int, int, int, float]] = []
_reports: list[float] = []


def _active() -> bool:
    return bool(os.environ.get("BENCH_TAIL_OUT")) and not os.environ.get("PYTEST_AGENT_ID")


def pytest_configure(config: pytest.Config) -> None:
    if not _active():
        return
    from pytest_parallel_agents.planning.scheduling import SuiteQueue

    original = SuiteQueue.top_up

    @functools.wraps(original)
    def top_up(self: SuiteQueue, agent: str, held: int, *args: Any, **kwargs: Any) -> list[int]:
        start = time.perf_counter()
        batch = original(self, agent, held, *args, **kwargs)
        cost = time.perf_counter() - start
        _calls.append((start, agent, held, len(batch), self.total_pending, cost))
        return batch

    SuiteQueue.top_up = top_up  # type: ignore[method-assign]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and _active():
        _reports.append(time.perf_counter())


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _active():
        return
    with open(os.environ["BENCH_TAIL_OUT"], "w", encoding="utf-8") as out:
        json.dump({"calls": _calls, "reports": _reports}, out)
