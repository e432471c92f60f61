"""The controller's pytest hooks that record each test as an event, and the JSON Lines file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any, final

import pytest

from pytest_parallel_agents.controller.events import Record, RunEvents

# The agent id of a test the controller ran itself (in-process, agents_serial, a plain run).
CONTROLLER = "controller"


def outcome_of(report: pytest.TestReport) -> str:
    """The terminal's category of one phase's report, as pytest's own teststatus gives it
    ("" for a setup or teardown that passed)."""
    if str(report.outcome) == "rerun":  # pytest-rerunfailures' failed attempts
        return "rerun"
    if hasattr(report, "wasxfail"):
        if report.skipped:
            return "xfailed"
        if report.passed:
            return "xpassed"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "skipped"
    return "passed" if report.when == "call" else ""


# Which phase's category stands for the test: the first of these any phase has.
_PRECEDENCE = ("error", "failed", "xpassed", "xfailed", "skipped", "passed")


@final
class _Test:
    """What the reports of one test said so far."""

    __slots__ = ("agent", "duration", "outcomes", "reason", "reruns", "start", "stop")

    def __init__(self, agent: str, start: float) -> None:
        self.agent = agent
        self.start = start
        self.stop = start
        self.duration = 0.0
        self.outcomes: set[str] = set()
        self.reruns = 0
        self.reason = ""


def short_reason(report: pytest.TestReport) -> str:
    """The one line a failure's summary shows (``-r`` style): the exception's message."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if isinstance(message, str):
        text = message
    elif isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


@final
class EventsPlugin:
    """Registered in the controller: turns every test's reports (replayed from an agent or
    run here) into its test_finished event, once its last report is in."""

    def __init__(self, events: RunEvents, run_id: str) -> None:
        self.events = events
        self.run_id = run_id
        self.run_started = False
        self._collected = 0
        self._tests: dict[str, _Test] = {}

    def start_run(
        self, *, mode: str, budget: int, suites: list[dict[str, Any]], reason: str = ""
    ) -> None:
        """The first event: the plan (or, for a run that planned nothing, the tests)."""
        if not self.run_started:
            self.run_started = True
            self.events.run_started(
                run_id=self.run_id,
                mode=mode,
                budget=budget,
                tests=self._collected,
                suites=suites,
                reason=reason,
            )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._collected = len(session.items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call", "teardown"):
            return
        if not self.run_started:  # no --agents: pytest's own loop runs the tests
            self.start_run(mode="plain", budget=1, suites=[])
        start = float(getattr(report, "start", 0.0) or 0.0)
        stop = float(getattr(report, "stop", 0.0) or 0.0)
        if start <= 0.0:  # a report the controller made (a crash, a lost test): now
            start = stop = time.time()
        test = self._tests.get(report.nodeid)
        agent = getattr(report, "agent_id", None) or CONTROLLER
        if test is None:
            test = self._tests[report.nodeid] = _Test(agent, start)
        test.agent = agent
        test.stop = max(test.stop, stop)
        test.duration += float(report.duration or 0.0)
        outcome = outcome_of(report)
        if outcome == "rerun":
            test.reruns += 1
        elif outcome:
            test.outcomes.add(outcome)
            if outcome in ("failed", "error") and not test.reason:
                test.reason = short_reason(report)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        test = self._tests.pop(nodeid, None)
        if test is None:
            return
        outcome = next((o for o in _PRECEDENCE if o in test.outcomes), "passed")
        self.events.test_finished(
            nodeid,
            agent=test.agent,
            outcome=outcome,
            start=test.start,
            stop=test.stop,
            duration=test.duration,
            reruns=test.reruns,
            reason=test.reason,
        )


@final
class JsonLinesSink:
    """Writes each event as one line of JSON and flushes it, so that ``tail -f`` follows the
    run. The file is written in place as the run goes (a stream cannot be renamed into
    place), created with the user's umask."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] | None = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self.error: str | None = None

    def __call__(self, record: Record) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()
        except (OSError, ValueError) as exc:  # ValueError: the file was closed under it
            self.error = f"cannot write events to {self.path}: {exc}"
            self.close()

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                self.error = self.error or f"cannot write events to {self.path}: {exc}"


def parse_events(text: str) -> list[dict[str, Any]]:
    """The events of a JSON Lines text; ValueError on a line that is not a JSON object."""
    records = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a line that is not an object: {line[:80]!r}")
            records.append(record)
    return records


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a JSON Lines file (``merge`` and tests read them back)."""
    return parse_events(path.read_text(encoding="utf-8"))
