"""A run's events as lanes of bars, and what bounded its wall time: data in, data out.

The HTML report draws this; ``merge`` builds it from the events files of CI shards, one
lane per job and agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, final

from pytest_parallel_agents.artifacts.events import CONTROLLER


@final
@dataclass
class Lane:
    """One agent's life: start-up, tests, and what happened to it."""

    agent: str
    suite: str
    host: str = "local"
    job: str = ""  # a CI shard's name, in merged reports
    started: float | None = None
    ready: float | None = None
    finished: float | None = None
    crashed: bool = False
    replaces: str | None = None
    # (start, stop, outcome, test) per test, in the order they finished.
    tests: list[tuple[float, float, str, str]] = field(default_factory=list)

    @property
    def busy(self) -> float:
        return sum(max(0.0, stop - start) for start, stop, _, _ in self.tests)

    @property
    def end(self) -> float:
        """When the lane's last test stopped or the agent finished, whichever is later."""
        last = max((stop for _, stop, _, _ in self.tests), default=0.0)
        return max(last, self.finished or 0.0)


@final
@dataclass(frozen=True)
class Mark:
    """Something that happened on a lane at a moment: a crash, a steal, a retry."""

    t: float
    kind: str
    agent: str
    text: str


@final
@dataclass(frozen=True)
class Failure:
    test: str
    outcome: str
    agent: str
    reason: str


@final
@dataclass
class Timeline:
    lanes: list[Lane]
    marks: list[Mark]
    failures: list[Failure]
    wall: float  # the session's seconds (run_finished, else the last event)
    suites: list[dict[str, Any]]  # the plan, as run_started gave it
    run: dict[str, Any]  # run_started's fields
    totals: dict[str, Any]  # run_finished's

    @property
    def tests(self) -> int:
        return sum(len(lane.tests) for lane in self.lanes)


def build_timeline(records: Iterable[Mapping[str, Any]], *, job: str = "") -> Timeline:
    """The lanes and marks of one run's event records."""
    lanes: dict[str, Lane] = {}
    marks: list[Mark] = []
    failures: list[Failure] = []
    run: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    wall = 0.0

    def lane(agent: str, suite: str | None = None) -> Lane:
        if agent not in lanes:
            guess = CONTROLLER if agent == CONTROLLER else agent.rsplit("-", 1)[0]
            lanes[agent] = Lane(agent, suite or guess, job=job)
        return lanes[agent]

    for record in records:
        event = record.get("event")
        t = float(record.get("t", 0.0))
        wall = max(wall, t)
        agent = record.get("agent")
        if event == "run_started":
            run = dict(record)
        elif event == "run_finished":
            totals = dict(record.get("totals") or {})
        elif not isinstance(agent, str):
            continue
        elif event == "agent_started":
            started = lane(agent, record.get("suite"))
            started.host = str(record.get("host") or "local")
            started.started = t
            started.replaces = record.get("replaces")
            if started.replaces:
                marks.append(Mark(t, "replacement", agent, f"replaces {started.replaces}"))
        elif event == "agent_ready":
            lane(agent).ready = t
        elif event == "agent_finished":
            ended = lane(agent)
            ended.finished = t
            ended.crashed = ended.crashed or bool(record.get("crashed"))
        elif event == "test_finished":
            start, stop = float(record["start"]), float(record["stop"])
            wall = max(wall, stop)
            outcome = str(record["outcome"])
            test = str(record["test"])
            lane(agent).tests.append((start, stop, outcome, test))
            if outcome in ("failed", "error"):
                failures.append(Failure(test, outcome, agent, str(record.get("reason") or "")))
        elif event == "agent_crashed":
            lane(agent).crashed = True
            blamed = record.get("test")
            text = f"crashed in {blamed}" if blamed else "crashed between tests"
            marks.append(Mark(t, "crash", agent, text))
        elif event == "retry":
            marks.append(Mark(t, "retry", agent, f"retry {record.get('test')}"))
        elif event == "timeout":
            marks.append(Mark(t, "timeout", agent, f"timeout {record.get('test')}"))
        elif event == "steal":
            marks.append(
                Mark(t, "steal", agent, f"stole {record.get('tests')} from {record.get('from')}")
            )
        elif event == "tests_given_back":
            marks.append(Mark(t, "given back", agent, f"gave back {record.get('tests')} tests"))
    order = {suite.get("name"): n for n, suite in enumerate(run.get("suites") or ())}
    ordered = sorted(
        lanes.values(),
        key=lambda lane: (
            lane.job,
            order.get(lane.suite, len(order)),
            lane.suite,
            lane.host,
            _number(lane.agent),
            lane.agent,
        ),
    )
    return Timeline(ordered, marks, failures, wall, list(run.get("suites") or ()), run, totals)


def merge_timelines(jobs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> Timeline:
    """One timeline of several runs (CI shards), a lane per job and agent; each job's times
    are moved by when its session started (``run_started``'s ``started``) after the first."""
    timelines = [build_timeline(records, job=job) for job, records in jobs]
    starts = [t.run.get("started") for t in timelines]
    known = [s for s in starts if isinstance(s, int | float)]
    origin = min(known, default=0.0)
    lanes: list[Lane] = []
    marks: list[Mark] = []
    failures: list[Failure] = []
    wall = 0.0
    suites: dict[str, dict[str, Any]] = {}
    budget = 0
    for timeline, start in zip(timelines, starts, strict=True):
        shift = float(start) - origin if isinstance(start, int | float) else 0.0
        for lane in timeline.lanes:
            lane.started = None if lane.started is None else lane.started + shift
            lane.ready = None if lane.ready is None else lane.ready + shift
            lane.finished = None if lane.finished is None else lane.finished + shift
            lane.tests = [(a + shift, b + shift, o, t) for a, b, o, t in lane.tests]
            lanes.append(lane)
        marks += [Mark(m.t + shift, m.kind, m.agent, m.text) for m in timeline.marks]
        failures += timeline.failures
        wall = max(wall, timeline.wall + shift)
        for suite in timeline.suites:
            name = str(suite.get("name"))
            merged = suites.setdefault(name, {**suite, "tests": 0, "agents": 0})
            merged["tests"] = (merged.get("tests") or 0) + (suite.get("tests") or 0)
            merged["agents"] = (merged.get("agents") or 0) + (suite.get("agents") or 0)
        budget += int(timeline.run.get("budget") or 0)
    run = {"mode": "merged", "jobs": len(jobs), "budget": budget, "started": origin or None}
    return Timeline(lanes, marks, failures, wall, list(suites.values()), run, {})


def _number(agent: str) -> int:
    tail = agent.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


@final
@dataclass(frozen=True)
class Bound:
    """One thing that held the wall time up, with its seconds.

    ``kind``: "serial" (a phase nothing runs beside), "path" (an agent on the critical
    path), "floor" (a lower bound of the test phase) or "controller".
    """

    what: str
    seconds: float
    detail: str
    kind: str


# Lanes that end this close to a lane's start count as what let it start.
_HANDOVER = 0.25


def _begin(lane: Lane) -> float:
    if lane.started is not None:
        return lane.started
    return min((start for start, _, _, _ in lane.tests), default=0.0)


def critical_path(timeline: Timeline) -> list[Lane]:
    """The chain of lanes that ends last: the lane that finished last, the lane whose end
    let it start (a suite waiting for budget, an exclusive suite waiting for everything, a
    replacement for a dead agent), and so on back to the start of the test phase."""
    lanes = [lane for lane in timeline.lanes if lane.tests or lane.started is not None]
    if not lanes:
        return []
    chain = [max(lanes, key=lambda lane: lane.end)]
    while True:
        begin = _begin(chain[-1])
        before = [
            lane
            for lane in lanes
            if lane not in chain
            and lane.job == chain[-1].job
            and lane.end <= begin + 1e-3
            and begin - lane.end <= _HANDOVER
        ]
        if not before:
            break
        chain.append(max(before, key=lambda lane: lane.end))
    chain.reverse()
    return chain


def what_bounded(timeline: Timeline, metrics: Mapping[str, Any] | None) -> list[Bound]:
    """What bounded the wall time, the largest first.

    The wall time is the serial phases (collection, planning, the end) plus the test phase.
    The test phase is the critical path: the chain of agents whose ends let the next start
    (each with its start-up, tests and idle time). Beside it two floors no schedule beats,
    the longest test and the work divided over the budget, and the controller's CPU time
    (when it nears the test phase, the controller is the limit).
    """
    totals = dict((metrics or {}).get("totals") or {})
    bounds: list[Bound] = []
    for key, what, detail in (
        ("collect_seconds", "collection", "collecting the tests, before any agent starts"),
        ("distribution_seconds", "planning", "classifying, sizing and planning the suites"),
        ("aggregation_seconds", "the end", "reports, coverage and artifacts after the tests"),
    ):
        seconds = float(totals.get(key) or 0.0)
        if seconds:
            bounds.append(Bound(what, seconds, detail, "serial"))
    exclusive = {suite.get("name") for suite in timeline.suites if suite.get("exclusive") is True}
    for lane in critical_path(timeline):
        begin = _begin(lane)
        longest = max(((stop - start, test) for start, stop, _, test in lane.tests), default=None)
        startup = (lane.ready - lane.started) if lane.ready and lane.started else 0.0
        parts = [f"{len(lane.tests)} tests, {lane.busy:.2f} s busy"]
        if startup:
            parts.append(f"start-up {startup:.2f} s")
        if longest is not None:
            parts.append(f"longest {longest[1]} ({longest[0]:.2f} s)")
        if lane.suite in exclusive:
            parts.append("its suite is exclusive: it ran alone")
        if lane.replaces:
            parts.append(f"it replaced {lane.replaces}")
        if lane.crashed:
            parts.append("it crashed")
        bounds.append(
            Bound(f"{lane.agent} on the critical path", lane.end - begin, "; ".join(parts), "path")
        )
    longest_test = max(
        ((stop - start, test) for lane in timeline.lanes for start, stop, _, test in lane.tests),
        default=None,
    )
    if longest_test is not None:
        bounds.append(Bound("the longest test", longest_test[0], longest_test[1], "floor"))
    agent_lanes = [lane for lane in timeline.lanes if lane.agent != CONTROLLER and lane.tests]
    budget = timeline.run.get("budget")
    if agent_lanes and isinstance(budget, int) and budget > 0:
        work = sum(lane.busy for lane in agent_lanes)
        bounds.append(
            Bound(
                "the work over the budget",
                work / budget,
                f"{work:.2f} s of tests over a budget of {budget} agents",
                "floor",
            )
        )
    controller = totals.get("controller_cpu_seconds")
    execution = float(totals.get("execution_seconds") or 0.0)
    if isinstance(controller, int | float) and execution:
        bounds.append(
            Bound(
                "the controller",
                float(controller),
                f"CPU seconds the controller spent in the test phase of {execution:.2f} s",
                "controller",
            )
        )
    bounds.sort(key=lambda bound: -bound.seconds)
    return bounds


def headline(timeline: Timeline, bounds: Sequence[Bound]) -> str:
    """One sentence: what bounded the wall time most."""
    wall = timeline.wall
    if not bounds or wall <= 0:
        return "nothing ran"
    path = [bound for bound in bounds if bound.kind == "path"]
    serial = [bound for bound in bounds if bound.kind == "serial"]
    controller = [bound for bound in bounds if bound.kind == "controller"]
    on_path = sum(bound.seconds for bound in path)
    if controller and on_path and controller[0].seconds >= 0.8 * on_path:
        top = controller[0]
        return (
            f"the controller: {top.seconds:.2f} s of CPU in a test phase of {on_path:.2f} s; "
            "agents waited for it"
        )
    floors = {bound.what: bound for bound in bounds if bound.kind == "floor"}
    if path and on_path >= sum(bound.seconds for bound in serial):
        work, test = floors.get("the work over the budget"), floors.get("the longest test")
        # A floor within a tenth of the test phase: no schedule would have done much better.
        if test is not None and test.seconds >= 0.9 * on_path:
            return (
                f"the longest test: {test.detail} took {test.seconds:.2f} s of a "
                f"{on_path:.2f} s test phase; splitting it is what would help"
            )
        if work is not None and work.seconds >= 0.9 * on_path:
            return (
                f"the work itself: {work.detail}, {work.seconds:.2f} s each, in a "
                f"{on_path:.2f} s test phase; the agents were busy, more of them would help"
            )
        longest = max(path, key=lambda bound: bound.seconds)
        chain = " \u2192 ".join(lane.agent for lane in critical_path(timeline))
        share = min(1.0, on_path / wall)
        return (
            f"the critical path {chain}: {on_path:.2f} s of {wall:.2f} s ({share:.0%}); "
            f"most of it {longest.what.split(' ', 1)[0]} ({longest.seconds:.2f} s: "
            f"{longest.detail})"
        )
    top = max(serial, key=lambda bound: bound.seconds) if serial else bounds[0]
    share = min(1.0, top.seconds / wall)
    return f"{top.what}: {top.seconds:.2f} s of {wall:.2f} s ({share:.0%}) \u2014 {top.detail}"
