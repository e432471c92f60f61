"""Unit tests for the per-suite work queue: initial split, batches, stealing, retries."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.planning.scheduling import (
    SuiteQueue,
    WorkUnit,
    hold_limit,
    refill,
    window_for,
)


def singles(count: int, predicted: float = 1.0) -> list[WorkUnit]:
    return [WorkUnit((i,), predicted) for i in range(count)]


def drain(queue: SuiteQueue, agent: str, max_tests: int = 1) -> list[int]:
    out: list[int] = []
    while batch := queue.take(agent, max_tests):
        out.extend(batch)
    return out


# -- WorkUnit ----------------------------------------------------------------


@pytest.mark.parametrize(("tests", "predicted"), [((), 1.0), ((1,), -1.0), ((1,), float("nan"))])
def test_work_unit_validation(tests: tuple[int, ...], predicted: float) -> None:
    with pytest.raises(ValueError):
        WorkUnit(tests, predicted)


def test_constructor_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicate agent"):
        SuiteQueue(singles(2), ["a", "a"], durations_known=False, in_order=False)
    with pytest.raises(ValueError, match="appear twice"):
        SuiteQueue(
            [WorkUnit((1, 2), 0), WorkUnit((2,), 0)], ["a"], durations_known=False, in_order=False
        )
    with pytest.raises(ValueError, match="appear twice"):
        SuiteQueue([WorkUnit((1, 1), 0)], ["a"], durations_known=False, in_order=False)


# -- initial assignment ------------------------------------------------------


def test_contiguous_chunks_without_durations() -> None:
    queue = SuiteQueue(singles(10), ["a", "b", "c"], durations_known=False, in_order=False)
    assert [queue.pending(a) for a in "abc"] == [3, 4, 3]
    assert queue.take("a", 10) == [0, 1, 2]
    assert queue.take("b", 10) == [3, 4, 5, 6]
    assert queue.take("c", 10) == [7, 8, 9]
    assert queue.empty


def test_contiguous_chunks_keep_units_whole() -> None:
    units = [WorkUnit((0, 1, 2, 3), 0), WorkUnit((4,), 0), WorkUnit((5,), 0), WorkUnit((6, 7), 0)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=False, in_order=False)
    assert queue.take("a", 100) == [0, 1, 2, 3]
    assert queue.take("b", 100) == [4, 5, 6, 7]


def test_lpt_assignment_then_longest_first() -> None:
    units = [WorkUnit((i,), p) for i, p in enumerate([1.0, 5.0, 2.0, 4.0, 3.0])]
    queue = SuiteQueue(units, ["a", "b"], durations_known=True, in_order=False)
    # LPT: 5->a, 4->b, 3->b, 2->a, 1->a (ties go to the earlier agent); each list longest
    # first, so that each agent ends on its shortest test.
    assert queue.pending_seconds("a") == 8.0
    assert queue.pending_seconds("b") == 7.0
    assert queue.take("a", 10) == [1, 2, 0]
    assert queue.take("b", 10) == [3, 4]


def test_longest_first_keeps_modules_and_classes_whole() -> None:
    # Two modules; m2 holds the longest test, so it comes first; inside m1 the class with the
    # longer test before the module-level tests; inside each, longest first.
    units = [
        WorkUnit((0,), 1.0, "m1", ""),
        WorkUnit((1,), 2.0, "m1", "C"),
        WorkUnit((2,), 0.5, "m1", "C"),
        WorkUnit((3,), 1.5, "m1", ""),
        WorkUnit((4,), 0.1, "m2", ""),
        WorkUnit((5,), 9.0, "m2", ""),
    ]
    queue = SuiteQueue(units, ["a"], durations_known=True, in_order=False)
    assert drain(queue, "a") == [5, 4, 1, 2, 3, 0]
    # Without durations: collection order, as before.
    assert drain(SuiteQueue(units, ["a"], durations_known=False, in_order=False), "a") == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.lists(st.floats(0, 10), min_size=1, max_size=40),
    modules=st.lists(st.sampled_from("xyz"), min_size=40, max_size=40),
    agents=st.integers(1, 4),
)
def test_each_agent_runs_a_module_in_one_visit_and_ends_on_its_shortest(
    seconds: list[float], modules: list[str], agents: int
) -> None:
    units = [WorkUnit((i,), p, modules[i]) for i, p in enumerate(seconds)]
    names = [f"a{n}" for n in range(agents)]
    queue = SuiteQueue(units, names, durations_known=True, in_order=False)
    for name in names:
        order = queue.take(name, len(seconds), steal=False)  # its whole share, in order
        visits = [modules[t] for t in order]
        # A module, once left, is never entered again.
        changes = [m for i, m in enumerate(visits) if i == 0 or visits[i - 1] != m]
        assert len(changes) == len(set(changes)), visits
        if order:
            # The last test is the shortest of its module's visit.
            last = modules[order[-1]]
            assert seconds[order[-1]] == min(seconds[t] for t in order if modules[t] == last)


def test_more_agents_than_units() -> None:
    queue = SuiteQueue(singles(2), ["a", "b", "c", "d"], durations_known=False, in_order=False)
    assert sum(queue.pending(a) for a in "abcd") == 2
    assert queue.total_pending == 2
    assert sorted(drain(queue, "d")) == [0, 1]


def test_no_agents_puts_everything_in_front() -> None:
    queue = SuiteQueue(
        [WorkUnit((0, 1), 0), WorkUnit((2,), 0)], [], durations_known=False, in_order=False
    )
    assert queue.agents == ()
    assert queue.total_pending == 3
    queue.add_agent("late")
    assert queue.take("late", 1) == [0, 1]
    assert queue.take("late", 1) == [2]
    assert queue.take("late", 1) == []


def test_empty_queue() -> None:
    queue = SuiteQueue([], ["a"], durations_known=True, in_order=False)
    assert queue.empty
    assert queue.total_pending == 0
    assert queue.take("a", 5) == []


# -- take --------------------------------------------------------------------


def test_take_respects_max_tests_but_never_splits_a_unit() -> None:
    units = [WorkUnit((0,), 0), WorkUnit((1, 2, 3), 0), WorkUnit((4,), 0), WorkUnit((5,), 0)]
    queue = SuiteQueue(units, ["a"], durations_known=False, in_order=False)
    # The group does not fit after test 0, and later units may not overtake it.
    assert queue.take("a", 2) == [0]
    assert queue.take("a", 2) == [1, 2, 3]
    assert queue.take("a", 2) == [4, 5]
    assert queue.take("a", 2) == []


def test_take_rejects_bad_arguments() -> None:
    queue = SuiteQueue(singles(3), ["a"], durations_known=False, in_order=False)
    with pytest.raises(ValueError):
        queue.take("a", 0)
    with pytest.raises(KeyError):
        queue.take("nobody", 1)
    with pytest.raises(KeyError):
        queue.pending("nobody")


def test_steal_picks_the_most_pending_seconds() -> None:
    units = [WorkUnit((0,), 10.0), *(WorkUnit((i,), 1.0) for i in range(1, 5))]
    queue = SuiteQueue(units, ["a", "b", "c"], durations_known=True, in_order=False)
    assert [queue.pending(x) for x in "abc"] == [1, 2, 2]
    assert queue.take("c", 100) == [2, 4]
    # b has more tests pending, but a has more seconds: a is the victim.
    assert queue.take("c", 100) == [0]
    assert queue.pending("a") == 0
    # Tail half of b's [1, 3], rounded up: one unit.
    assert queue.take("a", 100) == [3]
    assert queue.take("b", 100) == [1]
    assert queue.empty


def test_steal_without_durations_counts_tests() -> None:
    queue = SuiteQueue(singles(9), ["a", "b", "c"], durations_known=False, in_order=False)
    assert queue.take("a", 3) == [0, 1, 2]
    queue.take("b", 1)  # b keeps 4, 5; c keeps 6, 7, 8
    assert queue.pending_seconds("c") == 3.0
    # a steals ceil(3/2) = 2 units from the tail of c.
    assert queue.take("a", 10) == [7, 8]
    assert queue.pending("c") == 1


def test_steal_takes_the_last_unit() -> None:
    queue = SuiteQueue(singles(1), ["a", "b"], durations_known=False, in_order=False)
    assert queue.take("b", 1) == [0]
    assert queue.empty


def test_stolen_units_beyond_max_tests_stay_with_the_thief() -> None:
    queue = SuiteQueue(singles(8), ["a", "b"], durations_known=False, in_order=False)
    assert queue.take("a", 4) == [0, 1, 2, 3]
    assert queue.take("a", 1) == [6]
    assert queue.pending("a") == 1
    assert queue.pending("b") == 2


def test_a_long_tests_follower_is_a_short_test_not_the_other_long_one() -> None:
    # LPT gives each 10 s test an agent of its own; the agent must know the test after its
    # first before it starts, and stealing half of the busiest share (the other agent's
    # 10 s test, not started yet) ran both long tests in a row: twice the run.
    units = [WorkUnit((i,), 0.1) for i in range(100)]
    units += [WorkUnit((100,), 10.0), WorkUnit((101,), 10.0)]
    queue = SuiteQueue(units, ["a", "b", "c", "d"], durations_known=True, in_order=False)
    first = queue.top_up("a", held=0, want=3)
    second = queue.top_up("b", held=0, want=3)
    assert {first[0], second[0]} == {100, 101}
    assert first[1:] and second[1:]
    assert all(test < 100 for test in first[1:] + second[1:])


def test_a_follower_is_the_shortest_unit_of_the_victims_tails() -> None:
    durations = [5.0, 2.0, 1.5, 1.0, 0.5]
    units = [WorkUnit((i,), seconds) for i, seconds in enumerate(durations)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=True, in_order=False)
    # LPT: a gets 5; b gets 2, 1.5, 1 and 0.5 (5 s too).
    assert queue.take("a", 10) == [0]
    assert queue.pending("b") == 4
    # b's tail half is 1 and 0.5: the follower is the 0.5, and only it moves.
    assert queue.take("a", 10, steal=True, follower=True) == [4]
    assert queue.pending("b") == 3
    assert queue.pending("a") == 0


def test_without_durations_a_follower_still_steals_half() -> None:
    queue = SuiteQueue(singles(8), ["a", "b"], durations_known=False, in_order=False)
    assert queue.take("a", 4) == [0, 1, 2, 3]
    assert queue.take("a", 1, steal=True, follower=True) == [6]
    assert queue.pending("a") == 1  # the rest of the stolen half stays with the thief


# -- units given back --------------------------------------------------------


def test_only_whole_units_may_be_given_back() -> None:
    units = [WorkUnit((0,), 1.0), WorkUnit((1, 2, 3), 1.0), WorkUnit((4,), 1.0)]
    units.append(WorkUnit((5, 6), 1.0))
    queue = SuiteQueue(units, ["a", "b"], durations_known=False, in_order=False)
    # 1 of the group (1, 2, 3) has run or is running elsewhere in the batch: the group stays.
    assert queue.whole_units([2, 3, 4, 5, 6]) == [(4,), (5, 6)]
    assert queue.whole_units([6, 5, 0]) == [(5, 6), (0,)]
    assert queue.whole_units([]) == []


def test_units_given_back_come_first_and_whole() -> None:
    units = [WorkUnit((0,), 1.0), WorkUnit((1, 2), 1.0), WorkUnit((3,), 1.0)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=False, in_order=False)
    held = queue.take("a", 10) + queue.take("b", 10)
    assert queue.empty and sorted(held) == [0, 1, 2, 3]
    queue.give_back([(1, 2), (3,)])
    assert queue.total_pending == 3
    assert queue.take("b", 1) == [1, 2]  # a unit is never split to fit max_tests
    assert queue.take("a", 5) == [3]
    assert queue.empty
    with pytest.raises(ValueError, match="not a unit"):
        queue.give_back([(1,)])


# -- requeue / agents --------------------------------------------------------


def test_requeued_tests_come_first_fifo_to_any_agent() -> None:
    queue = SuiteQueue(singles(6), ["a", "b"], durations_known=False, in_order=False)
    first = queue.take("a", 2)
    assert first == [0, 1]
    queue.requeue([1])
    queue.requeue([0])
    assert queue.total_pending == 6
    assert queue.take("b", 1) == [1]
    assert queue.take("b", 5) == [0, 3, 4, 5]


def test_requeue_batch_stops_before_own_units_when_front_is_not_drained() -> None:
    queue = SuiteQueue(singles(4), ["a"], durations_known=False, in_order=False)
    taken = queue.take("a", 4)
    queue.requeue(taken)
    assert queue.take("a", 2) == [0, 1]
    assert queue.take("a", 3) == [2, 3]


def test_remove_agent_moves_whole_units_to_front() -> None:
    units = [WorkUnit((0,), 0), WorkUnit((1, 2), 0), WorkUnit((3,), 0), WorkUnit((4, 5), 0)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=False, in_order=False)
    assert queue.remove_agent("b") == [3, 4, 5]
    assert queue.agents == ("a",)
    assert queue.take("a", 1) == [3]
    assert queue.take("a", 1) == [4, 5]
    assert queue.take("a", 1) == [0]
    with pytest.raises(KeyError):
        queue.remove_agent("b")


def test_add_agent_steals_work() -> None:
    queue = SuiteQueue(singles(4), ["a"], durations_known=False, in_order=False)
    assert queue.pending_units == 4
    queue.add_agent("b")
    assert queue.pending("b") == 0
    assert queue.take("b", 10) == [2, 3]
    with pytest.raises(ValueError):
        queue.add_agent("b")


def scoped(*scopes: str) -> list[WorkUnit]:
    """One single-test unit per scope name, indices in order."""
    return [WorkUnit((i,), 1.0, scope) for i, scope in enumerate(scopes)]


def test_steal_goes_forward_into_new_modules_first() -> None:
    queue = SuiteQueue(
        scoped("m1", "m1", "m2", "m2", "m3", "m3", "m4", "m4"),
        ["a", "b"],
        durations_known=False,
        in_order=False,
    )
    assert queue.take("a", 4) == [0, 1, 2, 3]
    assert queue.take("b", 1) == [4]
    # a runs dry: the tail of b's pending work, ahead of everything a has had.
    assert queue.take("a", 4) == [6, 7]


def test_steal_avoids_a_module_the_thief_left_while_other_work_exists() -> None:
    queue = SuiteQueue(
        scoped("m1", "m2", "m1", "m3"), ["a", "b"], durations_known=False, in_order=False
    )
    assert queue.take("a", 2) == [0, 1]  # a has been in m1 and is now in m2
    # b's pending: 2 (m1) and 3 (m3); a steals m3, not back into m1.
    assert queue.take("a", 2) == [3]


def test_a_dry_agent_reenters_a_module_it_left_as_a_last_resort() -> None:
    queue = SuiteQueue(
        scoped("m1", "m2", "m1", "m1"), ["a", "b"], durations_known=False, in_order=False
    )
    assert queue.take("a", 2) == [0, 1]
    assert queue.take("b", 1) == [2]
    # Only m1 work is left, which a has left: idling beside it would be worse.
    assert queue.take("a", 2) == [3]


# -- properties --------------------------------------------------------------


@st.composite
def _units(draw: st.DrawFn) -> list[WorkUnit]:
    rows = draw(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 1000)), max_size=16))
    # Shuffle with a drawn seed: groups may gather tests from anywhere in collection order.
    indices = list(range(sum(size for size, _ in rows)))
    draw(st.randoms(use_true_random=False)).shuffle(indices)
    units, start = [], 0
    for size, tenths in rows:
        units.append(WorkUnit(tuple(indices[start : start + size]), tenths / 10))
        start += size
    return units


_agent_names = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True)
# A cyclic script of (agent position, max_tests) choices drives the interleaving.
_script = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6)), min_size=1, max_size=8)


def _check_units_whole(units: Sequence[WorkUnit], batches: Sequence[list[int]]) -> None:
    # Each unit must appear as one contiguous, ordered run inside a single batch.
    for unit in units:
        holders = [b for b in batches if unit.tests[0] in b]
        assert len(holders) == 1
        batch = holders[0]
        start = batch.index(unit.tests[0])
        assert tuple(batch[start : start + len(unit.tests)]) == unit.tests


@settings(max_examples=200, deadline=None)
@given(units=_units(), agents=_agent_names, known=st.booleans(), script=_script)
def test_random_draining_returns_every_test_once(
    units: list[WorkUnit], agents: list[str], known: bool, script: list[tuple[int, int]]
) -> None:
    queue = SuiteQueue(units, agents, durations_known=known, in_order=False)
    total = sum(len(u.tests) for u in units)
    assert queue.total_pending == total
    batches: list[list[int]] = []
    for step in itertools.count():
        if queue.empty:
            break
        position, max_tests = script[step % len(script)]
        batch = queue.take(agents[position % len(agents)], max_tests)
        assert batch  # something is pending somewhere, so take() must hand it out
        batches.append(batch)
        total -= len(batch)
        assert queue.total_pending == total
    assert queue.take(agents[0], 3) == []
    flat = [t for b in batches for t in b]
    assert sorted(flat) == sorted(t for u in units for t in u.tests)
    _check_units_whole(units, batches)


@settings(max_examples=200, deadline=None)
@given(units=_units(), agents=_agent_names, known=st.booleans(), script=_script)
def test_topping_up_hands_out_every_test_once_and_keeps_two_held(
    units: list[WorkUnit], agents: list[str], known: bool, script: list[tuple[int, int]]
) -> None:
    queue = SuiteQueue(units, agents, durations_known=known, in_order=False)
    batches: list[list[int]] = []
    for step in itertools.count():
        if queue.empty:
            break
        position, want = script[step % len(script)]
        # An agent holding two steals nothing: every few steps one has run dry.
        held = want % 3 if step % 4 else 0
        pending = queue.total_pending
        batch = queue.top_up(agents[position % len(agents)], held, want)
        assert held + len(batch) >= min(2, held + pending)
        if held >= 2:
            assert len(batch) <= want + max(len(u.tests) for u in units) - 1
        batches.append(batch)
    flat = [t for b in batches for t in b]
    assert sorted(flat) == sorted(t for u in units for t in u.tests)
    _check_units_whole(units, [b for b in batches if b])


@settings(max_examples=200, deadline=None)
@given(
    units=_units(),
    agents=_agent_names,
    known=st.booleans(),
    script=st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 6), st.sampled_from(["run", "crash", "leave"])),
        min_size=1,
        max_size=8,
    ),
)
def test_requeued_and_orphaned_tests_come_back_exactly_once(
    units: list[WorkUnit], agents: list[str], known: bool, script: list[tuple[int, int, str]]
) -> None:
    queue = SuiteQueue(units, agents, durations_known=known, in_order=False)
    live = list(agents)
    done: list[int] = []
    requeued: set[int] = set()
    for step in itertools.count():
        if queue.empty:
            break
        position, max_tests, action = script[step % len(script)]
        agent = live[position % len(live)]
        if action == "leave" and len(live) > 1:
            live.remove(agent)
            assert queue.remove_agent(agent) is not None
            continue
        batch = queue.take(agent, max_tests)
        assert batch
        if action == "crash":
            # Retry the batch; each test at most once, so the loop ends.
            again = [t for t in batch if t not in requeued]
            requeued.update(again)
            done.extend(t for t in batch if t not in again)
            queue.requeue(again)
        else:
            done.extend(batch)
        # The count is kept up to date, not recomputed: it must agree with what is left.
        assert queue.total_pending == sum(len(u.tests) for u in units) - len(done)
        # Units left: never more than tests left, and none exactly when nothing is left.
        assert queue.pending_units <= queue.total_pending
        assert (queue.pending_units == 0) == queue.empty
    assert sorted(done) == sorted(t for u in units for t in u.tests)


@settings(max_examples=200, deadline=None)
@given(units=_units(), agents=_agent_names, known=st.booleans())
def test_initial_assignment(units: list[WorkUnit], agents: list[str], known: bool) -> None:
    queue = SuiteQueue(units, agents, durations_known=known, in_order=False)
    loads = [queue.pending_seconds(a) for a in agents]
    if known:
        # LPT's greedy bound: the last unit went to an agent at or below the mean.
        total = sum(u.predicted for u in units)
        biggest = max((u.predicted for u in units), default=0.0)
        assert max(loads) <= total / len(agents) + biggest + 1e-9
        assert sum(loads) == pytest.approx(total)
    else:
        assert sum(loads) == sum(len(u.tests) for u in units)
    # Without durations each agent's own units come in collection order (ascending first
    # test); with them longest first (all units here share one module).
    by_first = {u.tests[0]: u for u in units}
    for agent in agents:
        got: list[int] = []
        while queue.pending(agent):
            got.extend(queue.take(agent, 1))
        starts = [t for t in got if t in by_first]
        if known:
            predicted = [by_first[t].predicted for t in starts]
            assert predicted == sorted(predicted, reverse=True)
        else:
            assert starts == sorted(starts)
    assert queue.empty


def test_drain_returns_everything_once() -> None:
    units = [WorkUnit((0, 1), 2.0), WorkUnit((2,), 1.0), WorkUnit((3,), 1.0)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=True, in_order=False)
    first = queue.take("a", 1)
    queue.requeue(first)
    assert queue.total_pending == 4
    drained = queue.drain()
    assert sorted(drained) == [0, 1, 2, 3]
    assert queue.empty
    assert queue.total_pending == 0
    assert queue.take("b", 10) == []


# -- how much an agent may hold ------------------------------------------------


@given(window=st.integers(2, 256), pending=st.integers(0, 100_000), agents=st.integers(1, 64))
def test_hold_limit_is_the_window_until_the_even_share_is_smaller(
    window: int, pending: int, agents: int
) -> None:
    limit = hold_limit(window, pending, agents)
    assert 2 <= limit <= window
    share = -(-pending // agents)
    assert limit == max(2, min(window, share))
    if share >= window:
        assert limit == window  # plenty left: batching is unchanged


def test_hold_limit_shrinks_to_two_at_the_end() -> None:
    assert [hold_limit(20, pending, 2) for pending in (100, 30, 9, 3, 0)] == [20, 15, 5, 2, 2]


@given(held=st.integers(0, 300), limit=st.integers(2, 256))
def test_an_agent_is_topped_up_to_its_limit_once_it_is_down_to_half(held: int, limit: int) -> None:
    want = refill(held, limit)
    if held > limit // 2:
        assert want == 0  # far from waiting: no message for a test or two
    else:
        assert held + want == limit
        assert held + want >= 2  # it always knows the test after the one it runs


def test_window_and_refill_reject_nonsense() -> None:
    for call in (
        lambda: refill(-1, 4),
        lambda: refill(0, 1),
        lambda: window_for(-1, 0.0),
        lambda: window_for(3, float("nan")),
    ):
        with pytest.raises(ValueError, match="bad arguments"):
            call()


@pytest.mark.parametrize(("window", "pending", "agents"), [(1, 5, 2), (4, -1, 2), (4, 5, 0)])
def test_hold_limit_rejects_nonsense(window: int, pending: int, agents: int) -> None:
    with pytest.raises(ValueError, match="bad arguments"):
        hold_limit(window, pending, agents)


# -- in collection order (--agents-order collection, the default) -----------------------


def test_in_order_agents_share_the_collection_window_by_window() -> None:
    queue = SuiteQueue(singles(10), ["a", "b"], durations_known=False)
    assert queue.take("a", 3) == [0, 1, 2]
    assert queue.take("b", 3) == [3, 4, 5]
    assert queue.take("a", 3) == [6, 7, 8]
    assert queue.take("b", 3) == [9]
    assert queue.empty


def test_in_order_known_durations_do_not_reorder() -> None:
    units = [WorkUnit((i,), seconds) for i, seconds in enumerate([0.1, 5.0, 0.1, 3.0])]
    queue = SuiteQueue(units, ["a"], durations_known=True)
    assert drain(queue, "a") == [0, 1, 2, 3]


def test_in_order_an_agent_never_goes_back_behind_what_it_took() -> None:
    queue = SuiteQueue(singles(6), ["a", "b"], durations_known=False)
    assert queue.take("a", 2) == [0, 1]
    assert queue.take("b", 2) == [2, 3]
    # a crashed holding 0 and 1: they go back, but b is past them; only a fresh agent may.
    queue.requeue([0, 1])
    assert queue.take("b", 4) == [4, 5]
    assert queue.exhausted_for("b")
    assert not queue.empty
    queue.add_agent("c")
    assert not queue.exhausted_for("c")
    assert queue.take("c", 4) == [0, 1]
    assert queue.empty


def test_in_order_returned_units_are_offered_only_to_an_agent_that_may_take_them() -> None:
    queue = SuiteQueue(singles(12), ["a", "b"], durations_known=False)
    assert queue.take("a", 3) == [0, 1, 2]
    assert queue.take("b", 9) == list(range(3, 12))
    # a ran dry: b holds 3..11, and everything behind its next (4) lies after a's last (2).
    offer = queue.reclaim_offer({"b": list(range(3, 12))}, "a")
    assert offer is not None
    assert offer[0] == "b"
    assert [u[0] for u in offer[1]] == list(range(5, 12))
    # Had a gone past them (say it ran 10), nothing b holds may be given to it.
    later = SuiteQueue(singles(12), ["a", "b"], durations_known=False)
    later.take("b", 3)
    later.take("a", 9)
    assert later.reclaim_offer({"b": [0, 1, 2]}, "a") is None


def test_in_order_a_group_is_placed_at_its_first_test() -> None:
    units = [WorkUnit((0,), 1), WorkUnit((1, 5), 1), WorkUnit((2,), 1), WorkUnit((3,), 1)]
    units += [WorkUnit((4,), 1)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=False)
    assert queue.take("a", 3) == [0, 1, 5]
    # The group lies at 1: a may still take what comes after 1.
    assert queue.take("a", 1) == [2]


@settings(max_examples=300, deadline=None)
@given(
    units=_units(),
    agents=_agent_names,
    known=st.booleans(),
    script=st.lists(
        st.tuples(
            st.integers(0, 5), st.integers(1, 6), st.sampled_from(["run", "crash", "return"])
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_in_order_every_agent_runs_a_subsequence_of_the_collection(
    units: list[WorkUnit], agents: list[str], known: bool, script: list[tuple[int, int, str]]
) -> None:
    """Whatever happens (crashes requeue tests, agents give units back, fresh agents join),
    each agent is handed units in increasing order of their first test, and every test is
    handed out exactly once in the end."""
    queue = SuiteQueue(units, agents, durations_known=known)
    starts = {u.tests[0] for u in units}
    live = list(agents)
    positions: dict[str, list[int]] = {agent: [] for agent in agents}
    done: list[int] = []
    requeued: set[int] = set()
    fresh = itertools.count()
    for step in itertools.count():
        if queue.empty:
            break
        position, max_tests, action = script[step % len(script)]
        agent = live[position % len(live)]
        if queue.exhausted_for(agent):
            able = [a for a in live if not queue.exhausted_for(a)]
            if not able:
                # The controller's last resort: an agent started now may take anything.
                live.append(name := f"fresh{next(fresh)}")
                positions[name] = []
                queue.add_agent(name)
                continue
            agent = able[0]
        batch = queue.take(agent, max_tests)
        assert batch  # not exhausted for it: something must come
        # A unit sits at its first test; a requeued test stands alone.
        positions[agent].extend(t for t in batch if t in starts or t in requeued)
        if action == "crash":
            again = [t for t in batch if t not in requeued]
            requeued.update(again)
            done.extend(t for t in batch if t not in again)
            queue.requeue(again)
        elif action == "return":
            # Whole planned units behind the first test, never requeued, go back unrun.
            back = [u for u in queue.whole_units(batch[1:]) if not requeued.intersection(u)]
            kept = {t for u in back for t in u}
            done.extend(t for t in batch if t not in kept)
            queue.give_back(back)
        else:
            done.extend(batch)
        assert queue.total_pending == sum(len(u.tests) for u in units) - len(done)
    assert sorted(done) == sorted(t for u in units for t in u.tests)
    for agent, seen in positions.items():
        assert seen == sorted(seen), agent
        assert len(set(seen)) == len(seen), agent


def test_in_order_known_durations_balance_shares_and_keep_each_in_order() -> None:
    # LPT by prediction, each share in collection order: the two long tests on two agents.
    seconds = [0.1, 5.0, 0.1, 0.1, 5.0, 0.1]
    units = [WorkUnit((i,), s) for i, s in enumerate(seconds)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=True)
    a, b = drain(queue, "a"), drain(queue, "b")
    assert sorted(a + b) == list(range(6))
    assert a == sorted(a) and b == sorted(b)
    assert {1, 4} & set(a) and {1, 4} & set(b)


def test_in_order_a_dry_agent_steals_only_what_lies_after_its_last() -> None:
    units = [WorkUnit((i,), 1.0) for i in range(8)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=True)
    mine = drain(queue, "a", 8)
    # a ran its share; b's share after a's last may be stolen, the rest may not.
    stolen = queue.take("b", 1)
    assert stolen and stolen[0] not in mine
    rest = queue.take("a", 8)
    assert all(t > max(mine) for t in rest)


# -- the tail: batch sizes and what a dispatch costs -----------------------------------


def quick(count: int) -> list[WorkUnit]:
    """Trivial tests with a previous run's figures: tens of microseconds, 100 a module."""
    return [WorkUnit((i,), 1e-5 * (1 + i * 7 % 5), f"m{i // 100}") for i in range(count)]


def test_in_order_quick_tests_with_durations_are_shared_not_planned() -> None:
    queue = SuiteQueue(quick(2_000), ["a", "b", "c", "d"], durations_known=True)
    assert [queue.pending(a) for a in "abcd"] == [0, 0, 0, 0]
    # So an agent faster than the others goes on through the collection with them.
    assert queue.take("a", 10) == list(range(10))
    assert queue.take("b", 10) == list(range(10, 20))
    assert queue.take("a", 10) == list(range(20, 30))


def test_in_order_a_long_test_is_planned_and_its_agent_goes_straight_to_it() -> None:
    units = [WorkUnit((i,), 10.0 if i == 50 else 0.01) for i in range(100)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=True)
    assert queue.pending("a") == 1 and queue.pending("b") == 0
    # a's own work (10 s) is more than an even share of what is pending (11 s / 2): it runs
    # its long test first, and b, still behind it, runs the quick ones before it.
    first = queue.take("a", 5)
    assert first == [50, 51, 52, 53, 54]
    assert queue.take("b", 50) == list(range(50))
    assert not queue.exhausted_for("b")
    assert queue.take("b", 100) == list(range(55, 100))


def test_in_order_an_agent_passes_shared_units_only_while_another_is_behind_them() -> None:
    units = [WorkUnit((i,), 10.0 if i == 5 else 0.01) for i in range(10)]
    queue = SuiteQueue(units, ["a", "b"], durations_known=True)
    assert queue.take("b", 1) == [0]
    # b is behind 1..4, so a may pass them; they stay for b.
    assert queue.take("a", 1) == [5]
    assert queue.take("b", 10) == [1, 2, 3, 4, 6, 7, 8, 9]
    alone = SuiteQueue(units, ["a"], durations_known=True)
    assert alone.take("a", 1) == [0]  # nobody else would take what it passed


def test_longest_first_a_follower_behind_a_quick_test_gets_a_full_batch() -> None:
    # a ran its share and holds its last (quick) test: each time it asks, the steal hands it
    # a window, not one unit per round trip.
    queue = SuiteQueue(quick(20_000), ["a", "b", "c", "d"], durations_known=True, in_order=False)
    queue.take("a", 20_000, steal=False)
    steals = 0
    while not queue.empty:
        own, busiest = queue.pending("a"), max(queue.pending(x) for x in "bcd")
        size = len(queue.top_up("a", held=1, want=99))
        if own:  # the rest of what it stole
            assert size == min(99, own)
        else:  # a steal: a window, or half of the busiest share when that is less
            assert size == min(99, (busiest + 1) // 2)
            steals += 1
    assert steals >= 10


def test_longest_first_a_follower_behind_a_long_test_is_one_short_unit() -> None:
    units = [*quick(400), WorkUnit((400,), 5.0, "long")]
    queue = SuiteQueue(units, ["a", "b", "c", "d"], durations_known=True, in_order=False)
    assert queue.pending("a") == 1  # LPT: the long test alone
    batch = queue.top_up("a", held=0, want=50)
    assert batch[0] == 400 and len(batch) == 2
    # Behind the quick test it then holds, the next steal is a batch again.
    assert len(queue.top_up("a", held=1, want=50)) == 50


def test_longest_first_a_thief_goes_back_into_a_module_it_left_rather_than_take_a_unit() -> None:
    # a runs 0..25: m0, then m1 (where it is now), so m0 is a module it left. b's pending:
    # 25 units in m0, one in m2. Keeping out of m0 would hand a one unit per round trip; it
    # takes a half of b's work instead.
    units = [WorkUnit((i,), 1.0, "m0") for i in range(25)]
    units += [WorkUnit((25,), 1.0, "m1")]
    units += [WorkUnit((i,), 1.0, "m0") for i in range(26, 51)]
    units += [WorkUnit((51,), 1.0, "m2")]
    queue = SuiteQueue(units, ["a", "b"], durations_known=False, in_order=False)
    assert queue.pending("a") == 26
    assert queue.take("a", 26) == list(range(26))
    assert queue.take("a", 20) == list(range(39, 52))  # the later half of b's, m0 included
    assert queue.pending("b") == 13
    # When what lies outside the modules it left fills the window, it keeps out of them.
    kept_out = SuiteQueue(units, ["a", "b"], durations_known=False, in_order=False)
    kept_out.take("a", 26)
    assert kept_out.take("a", 1) == [51]
    assert kept_out.pending("b") == 25


class _Counting(list[WorkUnit | int]):
    """A list that counts the elements its deletions and insertions shift, and its reads."""

    work = 0

    def __delitem__(self, index: Any) -> None:
        size = len(self)
        if isinstance(index, slice):
            start, stop, _ = index.indices(size)
            _Counting.work += size - stop if stop > start else 0
        else:
            _Counting.work += size - 1 - index % size
        super().__delitem__(index)

    def insert(self, index: Any, value: Any) -> None:
        _Counting.work += len(self) - min(max(index, 0), len(self))
        super().insert(index, value)

    def pop(self, index: Any = -1) -> Any:
        _Counting.work += len(self) - 1 - index % len(self)
        return super().pop(index)

    def __iter__(self) -> Any:
        _Counting.work += len(self)
        return super().__iter__()


def _uncounted(read: Callable[[str], int], name: str) -> int:
    work = _Counting.work
    try:
        return read(name)
    finally:
        _Counting.work = work


def _dispatch_work(count: int, *, known: bool, in_order: bool) -> tuple[int, int, int]:
    """Over a run of ``count`` quick tests where one agent of four asks four times as often
    as the others, each holding one test and asking for 63: (most elements one top_up
    shifted or read in the queue's lists beyond the tests it moved, that is handed out or
    stole into the asking agent's own units; those elements over the whole run; top_ups)."""
    names = ["a", "b", "c", "d"]
    queue = SuiteQueue(quick(count), names, durations_known=known, in_order=in_order)
    queue._ordered = _Counting(queue._ordered)  # type: ignore[assignment]
    queue._keys = _Counting(queue._keys)  # type: ignore[assignment]
    for name in names:
        queue._own[name] = _Counting(queue._own[name])  # type: ignore[assignment]
    _Counting.work = 0
    excess = dispatches = 0
    while not queue.empty:
        for name in ["a", "a", "a", *names]:
            own = _uncounted(queue.pending, name)
            before = _Counting.work
            handed = len(queue.top_up(name, held=1, want=63))
            work = _Counting.work - before
            moved = handed + max(0, _uncounted(queue.pending, name) + handed - own)
            excess = max(excess, work - moved)
            dispatches += 1
    return excess, _Counting.work, dispatches


@pytest.mark.parametrize(("known", "in_order"), list(itertools.product([False, True], repeat=2)))
def test_what_a_dispatch_costs_does_not_grow_with_what_is_pending(
    known: bool, in_order: bool
) -> None:
    for count in (2_000, 20_000):
        excess, work, dispatches = _dispatch_work(count, known=known, in_order=in_order)
        # Nearly every dispatch is a full window: no tail of one test per round trip.
        assert dispatches <= count // 63 + 32
        if in_order:
            # Agents take off the end of the shared stack: nothing behind them is shifted.
            assert (excess, work) == (0, 0)
        else:
            # A take pops off the agent's own stack; a steal shifts the rest of the
            # victim's stack once, no more than the half it moves (a C memmove): no
            # dispatch costs more than it moves, and over a run each test is shifted
            # about once at most, whatever is pending.
            assert excess <= 1
            assert work <= count


@st.composite
def _run_script(draw: st.DrawFn) -> tuple[list[WorkUnit], int, list[tuple[int, int, int]]]:
    """Units of random durations (many quick, some long, some grouped), agents, and a script
    of (agent, tests it finishes, event) steps: 0 ran, 1 crashed (its held tests requeued),
    2 gave back what waits behind its next test."""
    seconds = draw(
        st.lists(st.one_of(st.floats(0, 1e-3), st.floats(0.5, 30.0)), min_size=1, max_size=60)
    )
    indices = list(range(len(seconds)))
    units, start = [], 0
    sizes = draw(st.lists(st.integers(1, 3), min_size=len(seconds), max_size=len(seconds)))
    while start < len(indices):
        size = sizes[start]
        chunk = tuple(indices[start : start + size])
        units.append(WorkUnit(chunk, sum(seconds[start : start + size]), f"m{start // 10}"))
        start += size
    agents = draw(st.integers(1, 5))
    script = draw(
        st.lists(
            st.tuples(st.integers(0, 9), st.integers(1, 4), st.sampled_from([0] * 8 + [1, 2])),
            min_size=1,
            max_size=12,
        )
    )
    return units, agents, script


@settings(max_examples=300, deadline=None)
@given(run=_run_script(), window=st.integers(2, 12))
def test_topped_up_like_the_controller_every_agent_runs_a_subsequence_once(
    run: tuple[list[WorkUnit], int, list[tuple[int, int, int]]], window: int
) -> None:
    """Driven as the controller drives it (``hold_limit``, ``refill``, ``top_up``, fresh agents
    once nobody may take what is left), with random durations, agents finishing tests at
    random, crashes and tests given back: each agent is handed units in collection order,
    and every test is run exactly once."""
    units, count, script = run
    names = [f"agent{n}" for n in range(count)]
    queue = SuiteQueue(units, names, durations_known=True)
    held: dict[str, list[int]] = {name: [] for name in names}
    handed: dict[str, list[int]] = {name: [] for name in names}
    ran: list[int] = []
    crashed: set[int] = set()
    fresh = itertools.count()
    for step in itertools.count():
        if queue.empty and not any(held.values()):
            break
        assert step < 10_000
        pick, finishes, event = script[step % len(script)]
        live = list(held)
        name = live[(pick + step) % len(live)]
        if not held[name]:
            # An agent with nothing it may take has been told to finish: ask another.
            able = [a for a in live if not queue.exhausted_for(a)] if not queue.empty else []
            holding = [a for a in live if held[a]]
            if able:
                name = able[0]
            elif holding:
                name = holding[0]
            else:
                # What nobody may take waits for a fresh agent, as the controller starts.
                queue.add_agent(name := f"fresh{next(fresh)}")
                held[name], handed[name] = [], []
        mine = held[name]
        if event == 1 and mine and not crashed.intersection(mine):
            crashed.update(mine)
            queue.requeue(mine)  # a crash: what it held comes back, test by test
            del held[name]
            queue.add_agent(replacement := f"fresh{next(fresh)}")
            held[replacement], handed[replacement] = [], []
            continue
        if event == 2 and len(mine) > 2:
            back = [u for u in queue.whole_units(mine[2:]) if not crashed.intersection(u)]
            returned = {test for unit in back for test in unit}
            mine[:] = [test for test in mine if test not in returned]
            queue.give_back(back)
        ran.extend(mine[:finishes])
        del mine[:finishes]
        limit = hold_limit(window, queue.total_pending, len(held))
        batch = queue.top_up(name, len(mine), refill(len(mine), limit))
        mine.extend(batch)
        handed[name].extend(batch)
    assert sorted(ran) == sorted(test for unit in units for test in unit.tests)
    starts = {unit.tests[0] for unit in units} | crashed
    for name, tests in handed.items():
        positions = [test for test in tests if test in starts]
        assert positions == sorted(positions), name
