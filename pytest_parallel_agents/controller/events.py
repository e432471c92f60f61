"""The run's events as they happen (docs/events.md): one record per event, handed to sinks.

The controller, its recovery and watchdog, and the artifacts' pytest hooks call the typed
methods below; each builds one JSON-ready record, keeps it (the trace and the HTML report
are built from the records at the end) and hands it to every sink at once (the JSON Lines
file, a live view). Times are seconds since the session started, in the controller's clock;
a test's start and stop come from its reports, in the clock of the machine that ran it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

# Bumped when an event gains, loses or changes a field; docs/events.md is its schema.
EVENTS_SCHEMA: Final = 1

# Every event kind, in the order of a run; docs/events.md documents each.
EVENT_KINDS: Final = (
    "run_started",
    "suite_started",
    "agent_started",
    "agent_ready",
    "test_started",
    "test_finished",
    "steal",
    "tests_given_back",
    "agent_crashed",
    "timeout",
    "retry",
    "degraded",
    "agent_finished",
    "suite_finished",
    "run_finished",
)

Record = dict[str, Any]
Sink = Callable[[Record], None]


def _round(value: float) -> float:
    return round(value, 6)


@final
class RunEvents:
    """Records what the run does, keeps the records and hands each to the sinks."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self.records: list[Record] = []
        self.sinks: list[Sink] = []
        self._origin = clock()
        self._wall_origin = wall_clock()
        # Tests seen running and not finished yet: node id → agent (one test_started each).
        self._running: dict[str, str] = {}

    def restart_clock(self, origin: float) -> None:
        """Count from ``origin`` (a ``clock()`` reading: the session's start)."""
        now = self._clock()
        self._origin = origin
        self._wall_origin = self._wall_clock() - (now - origin)

    @property
    def wall_origin(self) -> float:
        """The session's start in the wall clock (``time.time()``)."""
        return self._wall_origin

    def since_start(self, reading: float) -> float:
        """Seconds since the session started, of a ``clock()`` reading."""
        return _round(reading - self._origin)

    def since_start_wall(self, epoch: float) -> float:
        """Seconds since the session started, of a wall-clock time (a report's start)."""
        return _round(epoch - self._wall_origin)

    def _emit(self, event: str, fields: Mapping[str, Any]) -> None:
        record: Record = {"event": event, "t": _round(self._clock() - self._origin)}
        record.update(fields)
        self.records.append(record)
        for sink in self.sinks:
            sink(record)

    # --- the run and its suites ------------------------------------------------------------

    def run_started(
        self,
        *,
        run_id: str,
        mode: str,
        budget: int,
        tests: int,
        suites: Sequence[Mapping[str, Any]],
        reason: str = "",
    ) -> None:
        self._emit(
            "run_started",
            {
                "schema": EVENTS_SCHEMA,
                "run_id": run_id,
                "started": _round(self._wall_origin),
                "mode": mode,
                "reason": reason or None,
                "budget": budget,
                "tests": tests,
                "suites": [dict(suite) for suite in suites],
            },
        )

    def suite_started(self, suite: str) -> None:
        self._emit("suite_started", {"suite": suite})

    def suite_finished(self, suite: str) -> None:
        self._emit("suite_finished", {"suite": suite})

    def degraded(self, suite: str, reason: str) -> None:
        self._emit("degraded", {"suite": suite, "reason": reason})

    def run_finished(self, *, exitstatus: int, totals: Mapping[str, Any]) -> None:
        self._emit("run_finished", {"exitstatus": exitstatus, "totals": dict(totals)})

    # --- agents ------------------------------------------------------------------------------

    def agent_started(self, agent: str, *, suite: str, host: str, replaces: str | None) -> None:
        self._emit(
            "agent_started", {"agent": agent, "suite": suite, "host": host, "replaces": replaces}
        )

    def agent_ready(self, agent: str, *, pid: int | None) -> None:
        self._emit("agent_ready", {"agent": agent, "pid": pid})

    def agent_crashed(self, agent: str, *, test: str | None, detail: str) -> None:
        if test is not None:
            self._running.pop(test, None)
        self._emit("agent_crashed", {"agent": agent, "test": test, "detail": detail})

    def agent_finished(self, agent: str, *, tests: int, busy_seconds: float, crashed: bool) -> None:
        for test in [t for t, a in self._running.items() if a == agent]:
            del self._running[test]
        self._emit(
            "agent_finished",
            {
                "agent": agent,
                "tests": tests,
                "busy_seconds": _round(busy_seconds),
                "crashed": crashed,
            },
        )

    # --- tests -------------------------------------------------------------------------------

    def test_started(self, test: str, *, agent: str, start: float) -> None:
        """``test`` runs on ``agent`` since ``start`` (wall clock); once per run of a test."""
        if self._running.get(test) == agent:
            return
        self._running[test] = agent
        self._emit(
            "test_started", {"test": test, "agent": agent, "start": self.since_start_wall(start)}
        )

    def test_finished(
        self,
        test: str,
        *,
        agent: str,
        outcome: str,
        start: float,
        stop: float,
        duration: float,
        reruns: int = 0,
        reason: str = "",
    ) -> None:
        """``start``/``stop``: wall clock (the reports'); a test_started comes first, always."""
        if self._running.get(test) != agent:
            self.test_started(test, agent=agent, start=start)
        self._running.pop(test, None)
        self._emit(
            "test_finished",
            {
                "test": test,
                "agent": agent,
                "outcome": outcome,
                "start": self.since_start_wall(start),
                "stop": self.since_start_wall(stop),
                "duration": _round(duration),
                "reruns": reruns,
                "reason": reason or None,
            },
        )

    def steal(self, suite: str, *, agent: str, victim: str, tests: int) -> None:
        self._emit("steal", {"suite": suite, "agent": agent, "from": victim, "tests": tests})

    def tests_given_back(self, suite: str, *, agent: str, tests: int) -> None:
        self._emit("tests_given_back", {"suite": suite, "agent": agent, "tests": tests})

    def retry(self, test: str, *, agent: str) -> None:
        self._emit("retry", {"test": test, "agent": agent})

    def timeout(self, test: str, *, agent: str, reason: str) -> None:
        self._emit("timeout", {"test": test, "agent": agent, "reason": reason})
