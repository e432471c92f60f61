"""From events to lanes, the critical path, what bounded the run, the trace and the report."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.artifacts.report import render, report_data
from pytest_parallel_agents.artifacts.timeline import (
    build_timeline,
    critical_path,
    headline,
    what_bounded,
)
from pytest_parallel_agents.artifacts.trace import chrome_trace
from pytest_parallel_agents.controller.events import RunEvents


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def waves_run() -> list[dict[str, Any]]:
    """Budget 2: unit (quick) and e2e (slow) start; integration takes unit's place when it
    ends; the exclusive performance suite waits for everything, then runs alone."""
    clock = Clock()
    events = RunEvents(clock=clock, wall_clock=clock)
    suites = [
        {"name": "unit", "exclusive": False},
        {"name": "e2e", "exclusive": False},
        {"name": "integration", "exclusive": False},
        {"name": "performance", "exclusive": True},
    ]
    events.run_started(run_id="r", mode="parallel", budget=2, tests=7, suites=suites)

    def agent(name: str, suite: str, begin: float, tests: list[tuple[str, float, str]]) -> float:
        clock.now = begin
        events.agent_started(name, suite=suite, host="popen", replaces=None)
        clock.now = begin + 0.1
        events.agent_ready(name, pid=1)
        at = clock.now
        for test, seconds, outcome in tests:
            clock.now = at + seconds
            events.test_finished(
                test, agent=name, outcome=outcome, start=at, stop=at + seconds, duration=seconds
            )
            at += seconds
        clock.now = at + 0.05
        events.agent_finished(name, tests=len(tests), busy_seconds=0.0, crashed=False)
        return clock.now

    unit_end = agent(
        "unit-0", "unit", 0.0, [("u.py::a", 0.2, "passed"), ("u.py::b", 0.2, "failed")]
    )
    e2e_end = agent("e2e-0", "e2e", 0.0, [("e.py::slow", 3.0, "passed")])
    agent("integration-0", "integration", unit_end, [("i.py::a", 1.0, "passed")])
    agent("performance-0", "performance", e2e_end, [("p.py::a", 0.5, "passed")])
    events.run_finished(exitstatus=1, totals={})
    return events.records


def test_lanes_follow_the_plan_order_with_every_test() -> None:
    timeline = build_timeline(waves_run())
    assert [lane.agent for lane in timeline.lanes] == [
        "unit-0",
        "e2e-0",
        "integration-0",
        "performance-0",
    ]
    assert timeline.tests == 5
    assert [f.test for f in timeline.failures] == ["u.py::b"]
    unit = timeline.lanes[0]
    assert (unit.started, unit.ready) == (0.0, 0.1)
    assert unit.busy == 0.4


def test_the_critical_path_is_the_chain_of_lanes_that_ended_last() -> None:
    timeline = build_timeline(waves_run())
    # performance-0 started when e2e-0 ended; integration-0 (after unit-0) ended earlier.
    assert [lane.agent for lane in critical_path(timeline)] == ["e2e-0", "performance-0"]


def test_what_bounded_names_the_path_the_floors_and_the_serial_phases() -> None:
    timeline = build_timeline(waves_run())
    metrics = {
        "totals": {
            "collect_seconds": 0.4,
            "distribution_seconds": 0.01,
            "aggregation_seconds": 0.02,
            "execution_seconds": 3.8,
            "controller_cpu_seconds": 0.2,
        }
    }
    bounds = {bound.what: bound for bound in what_bounded(timeline, metrics)}
    assert bounds["e2e-0 on the critical path"].seconds == pytest.approx(3.15)
    assert "longest e.py::slow (3.00 s)" in bounds["e2e-0 on the critical path"].detail
    assert "exclusive" in bounds["performance-0 on the critical path"].detail
    assert bounds["the longest test"].detail == "e.py::slow"
    assert bounds["the work over the budget"].seconds == pytest.approx(4.9 / 2)
    assert bounds["collection"].kind == "serial"
    line = headline(timeline, list(bounds.values()))
    assert line.startswith("the critical path e2e-0 \u2192 performance-0")
    assert "most of it e2e-0" in line


def test_a_controller_that_used_the_test_phase_is_the_headline() -> None:
    timeline = build_timeline(waves_run())
    metrics = {"totals": {"execution_seconds": 3.8, "controller_cpu_seconds": 3.7}}
    assert headline(timeline, what_bounded(timeline, metrics)).startswith("the controller")


def test_a_replacement_continues_the_path_of_the_agent_it_replaces() -> None:
    clock = Clock()
    events = RunEvents(clock=clock, wall_clock=clock)
    events.run_started(run_id="r", mode="parallel", budget=1, tests=2, suites=[])
    events.agent_started("unit-0", suite="unit", host="popen", replaces=None)
    clock.now = 1.0
    events.agent_crashed("unit-0", test="t.py::a", detail="SIGKILL")
    events.retry("t.py::a", agent="unit-0")
    events.agent_finished("unit-0", tests=0, busy_seconds=0, crashed=True)
    clock.now = 1.1
    events.agent_started("unit-1", suite="unit", host="popen", replaces="unit-0")
    events.test_finished("t.py::a", agent="unit-1", outcome="passed", start=1.2, stop=2, duration=1)
    clock.now = 2.1
    events.agent_finished("unit-1", tests=1, busy_seconds=1, crashed=False)
    timeline = build_timeline(events.records)
    assert [lane.agent for lane in critical_path(timeline)] == ["unit-0", "unit-1"]
    assert timeline.lanes[0].crashed
    assert [mark.kind for mark in timeline.marks] == ["crash", "retry", "replacement"]


def test_the_trace_has_a_track_per_agent_and_an_event_per_test() -> None:
    trace = chrome_trace(waves_run())
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"unit-0", "e2e-0", "integration-0", "performance-0"}
    tests = [e for e in events if e["ph"] == "X" and e["cat"] not in ("agent",)]
    assert sorted(e["name"] for e in tests) == sorted(
        ["u.py::a", "u.py::b", "e.py::slow", "i.py::a", "p.py::a"]
    )
    slow = next(e for e in tests if e["name"] == "e.py::slow")
    assert (slow["ts"], slow["dur"]) == (100_000, 3_000_000)
    tracks = {
        e["args"]["name"]: (e["pid"], e["tid"])
        for e in events
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert (slow["pid"], slow["tid"]) == tracks["e2e-0"]
    json.dumps(trace)  # plain JSON


def test_the_report_carries_every_test_compactly_and_safely() -> None:
    records = waves_run()
    records.append(
        {
            "event": "test_finished",
            "t": 9.0,
            "test": "x.py::test_[</script><b>]",
            "agent": "unit-0",
            "outcome": "passed",
            "start": 8.0,
            "stop": 9.0,
            "duration": 1.0,
        }
    )
    timeline = build_timeline(records)
    data = report_data(timeline, None)
    rebuilt = sorted(
        (data["files"][t[4]] + "::" if data["files"][t[4]] else "") + t[5] for t in data["tests"]
    )
    assert rebuilt == sorted(test for lane in timeline.lanes for *_, test in lane.tests)
    page = render(timeline, None, title="a <run>")
    assert "<title>a &lt;run&gt;</title>" in page
    # The node id's "</script>" cannot end the data block early.
    block = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    assert block is not None
    assert "test_[</script><b>]" in [t[5] for t in json.loads(block.group(1))["tests"]]
    assert "http://" not in page and "https://" not in page  # nothing fetched


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.floats(0, 100), st.floats(0, 10), st.sampled_from(["p", "f"])
        ),
        max_size=40,
    )
)
def test_every_test_reaches_the_report_and_the_trace_once(
    tests: list[tuple[int, float, float, str]],
) -> None:
    records: list[dict[str, Any]] = []
    for number, (agent, start, seconds, outcome) in enumerate(tests):
        records.append(
            {
                "event": "test_finished",
                "t": start + seconds,
                "test": f"t.py::test_{number}",
                "agent": f"unit-{agent}",
                "outcome": outcome,
                "start": start,
                "stop": start + seconds,
                "duration": seconds,
            }
        )
    timeline = build_timeline(records)
    assert timeline.tests == len(tests)
    assert len(report_data(timeline, None)["tests"]) == len(tests)
    trace = chrome_trace(records)["traceEvents"]
    assert sum(1 for e in trace if e["ph"] == "X") == len(tests)
    path = critical_path(timeline)
    assert len({lane.agent for lane in path}) == len(path)  # a chain, no loop


def test_a_busy_budget_is_the_work_itself_and_one_long_test_is_that_test() -> None:
    clock = Clock()
    events = RunEvents(clock=clock, wall_clock=clock)
    events.run_started(run_id="r", mode="parallel", budget=2, tests=4, suites=[])
    for agent in ("unit-0", "unit-1"):
        events.agent_started(agent, suite="unit", host="popen", replaces=None)
        for n in range(2):
            events.test_finished(
                f"t.py::{agent}_{n}", agent=agent, outcome="passed", start=n, stop=n + 1, duration=1
            )
        clock.now = 2.0
        events.agent_finished(agent, tests=2, busy_seconds=2, crashed=False)
    timeline = build_timeline(events.records)
    line = headline(timeline, what_bounded(timeline, None))
    assert line.startswith("the work itself: 4.00 s of tests over a budget of 2 agents"), line

    clock.now = 0.0
    events = RunEvents(clock=clock, wall_clock=clock)
    events.run_started(run_id="r", mode="parallel", budget=4, tests=2, suites=[])
    events.agent_started("unit-0", suite="unit", host="popen", replaces=None)
    events.test_finished(
        "t.py::long", agent="unit-0", outcome="passed", start=0, stop=9, duration=9
    )
    events.agent_started("unit-1", suite="unit", host="popen", replaces=None)
    events.test_finished(
        "t.py::short", agent="unit-1", outcome="passed", start=0, stop=1, duration=1
    )
    timeline = build_timeline(events.records)
    line = headline(timeline, what_bounded(timeline, None))
    assert line.startswith("the longest test: t.py::long took 9.00 s"), line
