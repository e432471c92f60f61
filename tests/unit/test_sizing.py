"""Unit tests for the agent-count formula and the wave planner."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.planning.sizing import (
    Plan,
    RunningPool,
    SuiteDemand,
    SuitePlan,
    Wave,
    agents_for,
    grow,
    plan_suites,
)

# -- agents_for --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tests", "items", "min_items", "max_agents", "expected"),
    [
        (15, 5, 3, 5, 3),
        (28, 5, 3, 8, 6),
        (3, 5, 3, 5, 1),
        (2, 5, 3, 5, 1),
        (0, 5, 3, 5, 0),
        (100, 5, 3, 4, 4),
        (16, 5, 3, 8, 4),
        (1, 1, 0, 8, 1),
    ],
)
def test_agents_for_examples(
    tests: int, items: int, min_items: int, max_agents: int, expected: int
) -> None:
    assert agents_for(tests, items, min_items, max_agents) == expected


@pytest.mark.parametrize(
    ("tests", "items", "max_agents"),
    [(-1, 5, 5), (10, 0, 5), (10, 5, 0)],
)
def test_agents_for_rejects_bad_input(tests: int, items: int, max_agents: int) -> None:
    with pytest.raises(ValueError):
        agents_for(tests, items, 3, max_agents)


@settings(max_examples=200, deadline=None)
@given(
    tests=st.integers(0, 10_000),
    items=st.integers(1, 50),
    min_items=st.integers(0, 50),
    max_agents=st.integers(1, 64),
)
def test_agents_for_bounds(tests: int, items: int, min_items: int, max_agents: int) -> None:
    agents = agents_for(tests, items, min_items, max_agents)
    if tests == 0:
        assert agents == 0
    else:
        assert 1 <= agents <= max_agents
        assert agents <= math.ceil(tests / items)
        # Monotone: one more test never means fewer agents, once past min_items.
        if tests >= min_items:
            assert agents_for(tests + 1, items, min_items, max_agents) >= agents


# -- plan_suites: examples ---------------------------------------------------


@pytest.mark.parametrize(
    ("tests", "items", "min_items", "budget", "expected"),
    [(15, 5, 3, 5, 3), (28, 5, 3, 8, 6), (3, 5, 3, 5, 1), (2, 5, 3, 5, 1)],
)
def test_single_suite_examples(
    tests: int, items: int, min_items: int, budget: int, expected: int
) -> None:
    demand = SuiteDemand("unit", tests, None, items=items, min_items=min_items, max_agents=budget)
    plan = plan_suites([demand], budget)
    assert plan.suites == (SuitePlan("unit", tests, None, expected),)
    assert plan.peak_agents == expected
    assert plan.in_process is (expected == 1)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        plan_suites([SuiteDemand("unit", 3, None)], 0)


def test_empty_suites_are_dropped() -> None:
    plan = plan_suites([SuiteDemand("unit", 0, None), SuiteDemand("e2e", 0, 1.0)], 4)
    assert plan == Plan(4, ())
    assert plan.in_process
    assert plan.peak_agents == 0


def test_wants_that_fit_are_granted_in_one_wave() -> None:
    plan = plan_suites([SuiteDemand("unit", 20, None), SuiteDemand("integration", 10, None)], 8)
    assert plan.waves == (
        Wave((SuitePlan("unit", 20, None, 4), SuitePlan("integration", 10, None, 2)), False),
    )
    assert plan.waves[0].agents == 6
    assert not plan.in_process


def test_per_suite_cap_limits_the_want() -> None:
    plan = plan_suites([SuiteDemand("unit", 100, None, max_agents=2)], 8)
    assert [s.agents for s in plan.suites] == [2]


def test_exclusive_suites_come_last_in_input_order() -> None:
    plan = plan_suites(
        [
            SuiteDemand("performance", 4, None, exclusive=True),
            SuiteDemand("unit", 10, None),
            SuiteDemand("security", 30, None, exclusive=True),
            SuiteDemand("e2e", 6, None),
        ],
        4,
    )
    assert [[s.name for s in w.suites] for w in plan.waves] == [
        ["unit", "e2e"],
        ["performance"],
        ["security"],
    ]
    assert [w.exclusive for w in plan.waves] == [False, True, True]
    assert [w.agents for w in plan.waves] == [4, 1, 4]
    assert plan.peak_agents == 4


def test_budget_shared_by_work_when_wants_do_not_fit() -> None:
    # Wants 10 and 10, budget 8; seconds 300 and 100 -> 6 and 2.
    plan = plan_suites([SuiteDemand("a", 50, 300.0), SuiteDemand("b", 50, 100.0)], 8)
    assert [s.agents for s in plan.suites] == [6, 2]


def test_share_uses_test_counts_when_any_duration_is_unknown() -> None:
    plan = plan_suites([SuiteDemand("a", 50, 1.0), SuiteDemand("b", 150, None)], 8)
    assert [s.agents for s in plan.suites] == [2, 6]


def test_share_respects_wants_and_minimum_one() -> None:
    # c wants only 1; a tiny suite d still gets one agent.
    plan = plan_suites(
        [
            SuiteDemand("a", 100, 500.0),
            SuiteDemand("b", 100, 500.0),
            SuiteDemand("c", 2, 1000.0),
            SuiteDemand("d", 10, 0.001),
        ],
        6,
    )
    assert [s.agents for s in plan.suites] == [2, 2, 1, 1]


def test_share_ties_go_to_the_earlier_suite() -> None:
    plan = plan_suites([SuiteDemand("a", 50, 10.0), SuiteDemand("b", 50, 10.0)], 5)
    assert [s.agents for s in plan.suites] == [3, 2]


def test_more_suites_than_budget_split_into_balanced_waves() -> None:
    demands = [
        SuiteDemand("a", 10, 100.0),
        SuiteDemand("b", 10, 90.0),
        SuiteDemand("c", 10, 20.0),
        SuiteDemand("d", 10, 10.0),
        SuiteDemand("e", 10, 80.0),
    ]
    plan = plan_suites(demands, 2)
    # Largest first into the least loaded wave with room: a->0, b->1, e->2, c->2, d->1.
    assert [[s.name for s in w.suites] for w in plan.waves] == [["a"], ["b", "d"], ["c", "e"]]
    assert all(w.agents == 2 for w in plan.waves)


def test_budget_one_runs_everything_in_process() -> None:
    demands = [SuiteDemand(name, 20, None) for name in ("a", "b", "c")]
    plan = plan_suites([*demands, SuiteDemand("x", 20, None, exclusive=True)], 1)
    assert len(plan.waves) == 4
    assert plan.in_process
    assert plan.peak_agents == 1


# -- plan_suites: properties -------------------------------------------------


_seconds = st.none() | st.integers(0, 1000).map(float)


@st.composite
def _demands(draw: st.DrawFn) -> list[SuiteDemand]:
    all_known: bool = draw(st.booleans())
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, 200),  # tests
                _seconds,
                st.integers(1, 10),  # items
                st.integers(0, 10),  # min_items
                st.none() | st.integers(1, 16),  # max_agents
                st.integers(0, 4).map(lambda n: n == 0),  # exclusive, one in five
            ),
            max_size=9,
        )
    )
    # Half the time every duration is known, so the seconds-based sharing is exercised.
    return [
        SuiteDemand(
            f"s{i}",
            tests,
            1.0 if seconds is None and all_known else seconds,
            items=items,
            min_items=min_items,
            max_agents=max_agents,
            exclusive=exclusive,
        )
        for i, (tests, seconds, items, min_items, max_agents, exclusive) in enumerate(rows)
    ]


def _want(demand: SuiteDemand, budget: int) -> int:
    cap = min(budget, demand.max_agents or budget)
    return agents_for(demand.tests, demand.items, demand.min_items, cap)


@settings(max_examples=200, deadline=None)
@given(demands=_demands(), budget=st.integers(1, 12))
def test_plan_invariants(demands: list[SuiteDemand], budget: int) -> None:
    plan = plan_suites(demands, budget)
    by_name = {d.name: d for d in demands}
    assert plan.budget == budget
    for wave in plan.waves:
        assert wave.suites
        assert wave.agents <= budget
        if wave.exclusive:
            assert len(wave.suites) == 1
            assert by_name[wave.suites[0].name].exclusive
        else:
            assert not any(by_name[s.name].exclusive for s in wave.suites)
            # Input order inside a wave.
            order = [demands.index(by_name[s.name]) for s in wave.suites]
            assert order == sorted(order)
    # Non-exclusive waves first.
    flags = [w.exclusive for w in plan.waves]
    assert flags == sorted(flags)
    # Every non-empty suite exactly once, with 1 <= agents <= want.
    planned = [s.name for s in plan.suites]
    assert sorted(planned) == sorted(d.name for d in demands if d.tests > 0)
    for suite in plan.suites:
        demand = by_name[suite.name]
        assert (suite.tests, suite.predicted_seconds) == (demand.tests, demand.predicted_seconds)
        assert 1 <= suite.agents <= _want(demand, budget)
    assert plan.peak_agents == max((w.agents for w in plan.waves), default=0)
    assert plan.in_process == (plan.peak_agents <= 1)
    # Shared suites fill as few waves as the budget allows; a short wave uses all of it,
    # and when every want fits, every want is granted.
    shared = [d for d in demands if d.tests > 0 and not d.exclusive]
    shared_waves = [w for w in plan.waves if not w.exclusive]
    assert len(shared_waves) == math.ceil(len(shared) / budget)
    for wave in plan.waves:
        wants = [_want(by_name[s.name], budget) for s in wave.suites]
        assert wave.agents == min(sum(wants), budget)
        if sum(wants) <= budget:
            assert [s.agents for s in wave.suites] == wants
    assert plan_suites(demands, budget) == plan


# -- grow: budget a finished suite freed, given to suites still running ------------------


def _pool(
    name: str,
    agents: int,
    pending: int,
    seconds: float,
    *,
    start: float = 0.05,
    items: int = 5,
    cap: int = 8,
    units: int | None = None,
) -> RunningPool:
    units = pending if units is None else units
    return RunningPool(name, agents, pending, units, seconds, start, items, 3, cap)


def test_a_long_suite_takes_the_slot_a_short_one_freed() -> None:
    # The project's own case: unit (1 agent) ended, e2e has 170 tests (~150 s) on one agent.
    assert grow([_pool("e2e", 1, 170, 150.0)], free=1) == {"e2e": 1}


def test_growth_stops_at_what_the_formula_gives_the_remaining_tests() -> None:
    # 12 tests left at 5 per agent deserve 3 agents: one more than the two running.
    assert grow([_pool("unit", 2, 12, 60.0)], free=4) == {"unit": 1}
    assert grow([_pool("unit", 1, 4, 60.0)], free=4) == {}  # fewer than 5: one agent


def test_growth_stops_at_the_suites_cap() -> None:
    assert grow([_pool("e2e", 1, 500, 500.0, cap=1)], free=3) == {}
    assert grow([_pool("e2e", 1, 500, 500.0, cap=3)], free=3) == {"e2e": 2}


def test_no_agent_is_started_for_less_work_than_starting_it_costs() -> None:
    # 20 trivial tests left (20 ms): a spawned agent (1.5 s to start) would only slow the run.
    assert grow([_pool("unit", 1, 20, 0.02, start=1.5)], free=1) == {}
    # 40 s left: the second agent's share (20 s) is worth a 1.5 s start, a third's too.
    assert grow([_pool("unit", 1, 40, 40.0, start=1.5)], free=2) == {"unit": 2}


def test_slots_go_first_where_one_more_agent_takes_the_most_work() -> None:
    pools = [_pool("small", 1, 30, 10.0), _pool("big", 1, 30, 90.0)]
    assert grow(pools, free=1) == {"big": 1}
    # A third and a fourth agent of big still take 30 s and 22.5 s; small's second 5 s.
    assert grow(pools, free=3) == {"big": 3}
    capped = [_pool("small", 1, 30, 10.0), _pool("big", 1, 30, 90.0, cap=2)]
    assert grow(capped, free=3) == {"big": 1, "small": 2}


def test_no_more_agents_than_pending_units_to_give_them() -> None:
    # 60 tests left, but in two groups (a group never splits): two new agents at most.
    assert grow([_pool("db", 1, 60, 60.0, units=2)], free=4) == {"db": 2}


def test_a_pool_without_agents_is_not_grown() -> None:
    assert grow([_pool("unit", 0, 100, 100.0)], free=2) == {}
    with pytest.raises(ValueError, match="free"):
        grow([], free=-1)


@st.composite
def _running(draw: st.DrawFn) -> list[RunningPool]:
    count = draw(st.integers(0, 5))
    pools = []
    for n in range(count):
        pending = draw(st.integers(0, 300))
        pools.append(
            RunningPool(
                f"s{n}",
                draw(st.integers(0, 6)),
                pending,
                draw(st.integers(min(pending, 1), pending)),
                draw(st.floats(0, 500)),
                draw(st.floats(0, 5)),
                draw(st.integers(1, 10)),
                draw(st.integers(0, 6)),
                draw(st.integers(1, 12)),
            )
        )
    return pools


@given(pools=_running(), free=st.integers(0, 12))
def test_grow_invariants(pools: list[RunningPool], free: int) -> None:
    added = grow(pools, free)
    assert sum(added.values()) <= free
    assert all(count > 0 for count in added.values())
    by_name = {pool.name: pool for pool in pools}

    def may_take_one_more(pool: RunningPool, count: int) -> bool:
        want = agents_for(pool.pending_tests, pool.items, pool.min_items, pool.max_agents)
        return (
            1 <= count < want
            and count - pool.agents < pool.pending_units
            and pool.pending_seconds / (count + 1) > pool.start_seconds
        )

    for name, count in added.items():
        pool = by_name[name]
        # Every agent added was worth it when it was added, and within the formula.
        for before in range(pool.agents, pool.agents + count):
            assert may_take_one_more(pool, before)
    if sum(added.values()) < free:
        # Work-conserving: a slot stays idle only when no pool could use it.
        for pool in pools:
            assert not may_take_one_more(pool, pool.agents + added.get(pool.name, 0))
