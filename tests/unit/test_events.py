"""The run's events: records on a fake clock, sinks, the JSON Lines file, the documented schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_parallel_agents.artifacts.events import (
    EventsPlugin,
    JsonLinesSink,
    outcome_of,
    read_events,
    short_reason,
)
from pytest_parallel_agents.controller.events import EVENT_KINDS, EVENTS_SCHEMA, RunEvents

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_events(perf: float = 100.0, wall: float = 1_000.0) -> tuple[RunEvents, Clock, Clock]:
    clock, wall_clock = Clock(perf), Clock(wall)
    return RunEvents(clock=clock, wall_clock=wall_clock), clock, wall_clock


def test_times_count_from_the_session_start_in_both_clocks() -> None:
    events, clock, wall = make_events()
    clock.now, wall.now = 102.0, 1_002.0
    events.restart_clock(101.0)  # the session started a second ago
    assert events.wall_origin == 1_001.0
    clock.now = 103.5
    events.suite_started("unit")
    assert events.records == [{"event": "suite_started", "t": 2.5, "suite": "unit"}]
    assert events.since_start_wall(1_001.25) == 0.25


def test_every_record_goes_to_every_sink_as_it_happens() -> None:
    events, clock, _ = make_events()
    seen: list[list[dict[str, Any]]] = [[], []]
    events.sinks.extend([seen[0].append, seen[1].append])
    events.agent_started("unit-0", suite="unit", host="popen", replaces=None)
    assert seen[0] == seen[1] == events.records
    clock.now += 1
    events.agent_ready("unit-0", pid=42)
    assert [r["event"] for r in seen[0]] == ["agent_started", "agent_ready"]


def test_a_finished_test_was_started_once_on_its_agent() -> None:
    events, _, _ = make_events(wall=1_000.0)
    events.test_started("t.py::a", agent="unit-0", start=1_000.5)
    events.test_started("t.py::a", agent="unit-0", start=1_000.5)  # seen again: one line
    events.test_finished(
        "t.py::a", agent="unit-0", outcome="passed", start=1_000.5, stop=1_001.0, duration=0.5
    )
    # A quick test nobody saw running: its start comes with its result, and first.
    events.test_finished(
        "t.py::b", agent="unit-1", outcome="failed", start=1_001.0, stop=1_001.1, duration=0.1
    )
    kinds = [(r["event"], r["test"], r["agent"]) for r in events.records]
    assert kinds == [
        ("test_started", "t.py::a", "unit-0"),
        ("test_finished", "t.py::a", "unit-0"),
        ("test_started", "t.py::b", "unit-1"),
        ("test_finished", "t.py::b", "unit-1"),
    ]
    assert events.records[2]["start"] == 1.0
    assert events.records[3]["stop"] == pytest.approx(1.1)


def test_a_retried_test_starts_again_on_the_fresh_agent() -> None:
    events, _, _ = make_events(wall=0.0)
    events.test_started("t.py::a", agent="unit-0", start=1.0)
    events.agent_crashed("unit-0", test="t.py::a", detail="killed by SIGKILL")
    events.test_started("t.py::a", agent="unit-2", start=3.0)
    events.test_finished(
        "t.py::a", agent="unit-2", outcome="passed", start=3.0, stop=4.0, duration=1.0
    )
    assert [r["event"] for r in events.records] == [
        "test_started",
        "agent_crashed",
        "test_started",
        "test_finished",
    ]


def test_json_lines_are_flushed_one_per_event(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    events, clock, _ = make_events()
    sink = JsonLinesSink(path)
    events.sinks.append(sink)
    events.run_started(run_id="r", mode="parallel", budget=2, tests=3, suites=[{"name": "unit"}])
    # Readable before the run ends: what `tail -f` sees.
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["run_started"]
    clock.now += 1
    events.run_finished(exitstatus=0, totals={"tests": 3})
    sink.close()
    sink.close()  # twice: harmless
    assert read_events(path) == events.records
    assert read_events(path)[0]["schema"] == EVENTS_SCHEMA


def test_a_sink_that_cannot_write_says_so_once_and_stops(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "e.jsonl")
    sink._file.close()  # type: ignore[union-attr]  # the file went away under it
    sink({"event": "x", "t": 0})
    assert sink.error is not None and "cannot write events" in sink.error
    sink({"event": "y", "t": 0})  # no second error, no exception


def _report(when: str, outcome: str, **extra: Any) -> pytest.TestReport:
    report = pytest.TestReport(
        nodeid="t.py::x",
        location=("t.py", 1, "x"),
        keywords={},
        outcome=outcome,  # type: ignore[arg-type]
        longrepr=extra.pop("longrepr", None),
        when=when,  # type: ignore[arg-type]
        duration=extra.pop("duration", 0.1),
        start=extra.pop("start", 10.0),
        stop=extra.pop("stop", 10.1),
    )
    for name, value in extra.items():
        setattr(report, name, value)
    return report


@pytest.mark.parametrize(
    ("when", "outcome", "extra", "category"),
    [
        ("call", "passed", {}, "passed"),
        ("setup", "passed", {}, ""),
        ("teardown", "passed", {}, ""),
        ("call", "failed", {}, "failed"),
        ("setup", "failed", {}, "error"),
        ("teardown", "failed", {}, "error"),
        ("setup", "skipped", {}, "skipped"),
        ("call", "skipped", {"wasxfail": ""}, "xfailed"),
        ("call", "passed", {"wasxfail": ""}, "xpassed"),
        ("call", "rerun", {}, "rerun"),
    ],
)
def test_outcomes_are_the_terminals_categories(
    when: str, outcome: str, extra: dict[str, Any], category: str
) -> None:
    assert outcome_of(_report(when, outcome, **extra)) == category


def test_a_test_is_its_worst_phase_and_its_reruns_are_counted() -> None:
    events, _, _ = make_events(wall=0.0)
    plugin = EventsPlugin(events, "run")
    plugin.start_run(mode="parallel", budget=2, suites=[])
    phases = [
        _report("setup", "passed", start=1.0, stop=1.1, duration=0.1),
        _report("call", "rerun", start=1.1, stop=1.5, duration=0.4),
        _report("call", "passed", start=1.5, stop=1.9, duration=0.4),
        _report("teardown", "failed", start=1.9, stop=2.0, duration=0.1, longrepr="boom\nmore"),
    ]
    for report in phases:
        report.agent_id = "unit-1"  # type: ignore[attr-defined]
        plugin.pytest_runtest_logreport(report)
    plugin.pytest_runtest_logfinish("t.py::x")
    finished = events.records[-1]
    assert finished["event"] == "test_finished"
    assert finished["outcome"] == "error"
    assert finished["agent"] == "unit-1"
    assert (finished["start"], finished["stop"]) == (1.0, 2.0)
    assert finished["duration"] == pytest.approx(1.0)
    assert finished["reruns"] == 1
    assert finished["reason"] == "boom"


def test_a_plain_run_begins_with_run_started_and_runs_on_the_controller() -> None:
    events, _, _ = make_events(wall=0.0)
    plugin = EventsPlugin(events, "run")
    plugin.pytest_runtest_logreport(_report("call", "passed"))
    plugin.pytest_runtest_logfinish("t.py::x")
    assert [r["event"] for r in events.records] == ["run_started", "test_started", "test_finished"]
    assert events.records[0]["mode"] == "plain"
    assert events.records[-1]["agent"] == "controller"


def test_short_reason_is_the_exception_message() -> None:
    class Crash:
        message = "AssertionError: assert 1 == 2\nsecond line"

    class Repr:
        reprcrash = Crash()

    assert short_reason(_report("call", "failed", longrepr=Repr())) == (
        "AssertionError: assert 1 == 2"
    )
    assert short_reason(_report("setup", "skipped", longrepr=("t.py", 3, "Skipped: no"))) == (
        "Skipped: no"
    )


def _documented() -> dict[str, str]:
    """Each kind's section of docs/events.md (a heading may name two kinds)."""
    text = DOCS.read_text()
    sections: dict[str, str] = {}
    for match in re.finditer(r"^### ([^\n]+)\n(.*?)(?=^### |\Z)", text, re.M | re.S):
        for kind in re.findall(r"`(\w+)`", match.group(1)):
            sections[kind] = match.group(2)
    return sections


def _every_kind() -> list[dict[str, Any]]:
    events, _, _ = make_events(wall=0.0)
    events.run_started(run_id="r", mode="parallel", budget=2, tests=1, suites=[])
    events.suite_started("unit")
    events.agent_started("unit-0", suite="unit", host="popen", replaces=None)
    events.agent_ready("unit-0", pid=1)
    events.test_started("t.py::a", agent="unit-0", start=0.5)
    events.test_finished(
        "t.py::a", agent="unit-0", outcome="failed", start=0.5, stop=1, duration=0.5, reason="x"
    )
    events.steal("unit", agent="unit-0", victim="unit-1", tests=3)
    events.tests_given_back("unit", agent="unit-1", tests=2)
    events.agent_crashed("unit-0", test="t.py::a", detail="SIGKILL")
    events.timeout("t.py::a", agent="unit-0", reason="timeout: 1 s")
    events.retry("t.py::a", agent="unit-0")
    events.degraded("unit", "2 of its agents died")
    events.agent_finished("unit-0", tests=1, busy_seconds=0.5, crashed=True)
    events.suite_finished("unit")
    events.run_finished(exitstatus=1, totals={})
    return events.records


def test_the_docs_describe_every_kind_and_every_field() -> None:
    records = _every_kind()
    assert [r["event"] for r in records] == list(EVENT_KINDS)
    sections = _documented()
    assert set(sections) == set(EVENT_KINDS)
    for record in records:
        section = sections[record["event"]]
        for field in record:
            if field in ("event", "t"):
                continue  # the common fields
            assert f"`{field}`" in section, f"docs/events.md: {record['event']} lacks `{field}`"
    assert f'"schema": {EVENTS_SCHEMA}' in DOCS.read_text()


def test_every_record_is_json() -> None:
    for record in _every_kind():
        assert json.loads(json.dumps(record)) == record
