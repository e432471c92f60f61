"""The controller's per-pool arithmetic: how many tests an agent holds, how a pool may grow."""

from __future__ import annotations

import pytest

from pytest_parallel_agents.controller.pools import PoolState, SuiteWork
from pytest_parallel_agents.controller.runstate import AgentRecord
from pytest_parallel_agents.planning.scheduling import MAX_WINDOW, MIN_WINDOW, SuiteQueue, WorkUnit
from pytest_parallel_agents.planning.sizing import RunningPool, SuitePlan


def _pool(tests: int = 10, agents: int = 2, **plan: int) -> PoolState:
    units = [WorkUnit((i,), 0.0, scope=f"m{i % 3}") for i in range(tests)]
    names = [f"unit-{n}" for n in range(agents)]
    work = SuiteWork("unit", list(range(tests)), units, durations_known=False, files=())
    suite = SuitePlan("unit", tests, None, agents, **plan)
    return PoolState(work, SuiteQueue(units, names, durations_known=False), agents, suite)


def _records(pool: PoolState, *spawns: float | None) -> dict[str, AgentRecord]:
    """The pool's agents (unit-0, unit-1, ...), started with these start-up times."""
    records = {}
    for n, spawn in enumerate(spawns):
        record = AgentRecord(f"unit-{n}", "unit", "local", started_at=10.0)
        if spawn is not None:
            record.ready_at = 10.0 + spawn
        records[record.id] = record
        pool.agents.add(record.id)
    return records


@pytest.mark.parametrize(
    ("done", "busy", "window"),
    [
        (0, 0.0, 4),  # nothing measured yet: a small first batch
        (10, 0.0, MAX_WINDOW),  # tests that take no measurable time
        (100, 1.0, 50),  # 10 ms each: 0.25 s of work held, doubled (refilled at half)
        (2, 10.0, MIN_WINDOW),  # 5 s each: never fewer than two, so the agent never waits
    ],
)
def test_an_agent_holds_about_a_quarter_second_of_work(done: int, busy: float, window: int) -> None:
    pool = _pool()
    pool.done_tests, pool.busy = done, busy
    assert pool.window() == window


def test_a_degraded_pool_feeds_its_agent_the_fewest_tests() -> None:
    pool = _pool()
    pool.done_tests, pool.busy = 100, 1.0
    pool.degraded = True
    assert pool.window() == MIN_WINDOW


def test_the_growth_view_carries_what_was_measured_and_the_suites_formula() -> None:
    pool = _pool(tests=10, agents=2, items=4, min_items=2, max_agents=8)
    pool.done_tests, pool.busy = 4, 2.0
    for _ in range(4):  # four tests done: six remain in the queue
        pool.queue.take("unit-0", 1, steal=False)
    view = pool.growth_view(_records(pool, 0.2, 0.4), budget=4)
    assert view is not None
    assert view.start_seconds == pytest.approx(0.3)  # the mean of its agents' start-ups
    assert view == RunningPool("unit", 2, 6, 6, 3.0, view.start_seconds, 4, 2, 4)


@pytest.mark.parametrize(
    ("degraded", "done", "spawn"),
    [(True, 4, 0.2), (False, 0, 0.2), (False, 4, None)],
    ids=["degraded", "nothing-measured", "no-start-up-measured"],
)
def test_a_pool_does_not_grow_without_measurements_or_once_degraded(
    degraded: bool, done: int, spawn: float | None
) -> None:
    pool = _pool()
    pool.degraded, pool.done_tests, pool.busy = degraded, done, 1.0
    assert pool.growth_view(_records(pool, spawn), budget=4) is None


def test_a_pool_with_nothing_pending_does_not_grow() -> None:
    pool = _pool(tests=2)
    pool.done_tests, pool.busy = 2, 1.0
    pool.queue.take("unit-0", 2, steal=True)
    pool.queue.take("unit-1", 2, steal=True)
    assert pool.queue.total_pending == 0
    assert pool.growth_view(_records(pool, 0.2), budget=4) is None
