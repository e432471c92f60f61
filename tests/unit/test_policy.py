"""The controller's decisions, driven in one process by simulated agents on a fake clock."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.controller.policy import Decision, Dispatcher, Send, StartAgents
from pytest_parallel_agents.controller.pools import AgentState, SuiteWork
from pytest_parallel_agents.controller.runstate import AgentRecord
from pytest_parallel_agents.planning.scheduling import WorkUnit, withdraw
from pytest_parallel_agents.planning.sizing import SuitePlan
from pytest_parallel_agents.transport.protocol import ReturnTests, RunTests, Shutdown


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SimAgent:
    """What a real agent does with the commands, as session.py runs them."""

    queue: deque[int] = field(default_factory=deque)
    running: int | None = None
    shutdown: bool = False
    ran: list[int] = field(default_factory=list)
    ended: bool = False


class Simulation:
    """Carries out the dispatcher's decisions as real agents and a real transport would:
    commands arrive at once, a test takes its duration on the fake clock, an agent starts a
    test only once it holds the next one or was told to shut down."""

    def __init__(
        self,
        units: Sequence[WorkUnit],
        *,
        durations: dict[int, float],
        suites: Sequence[tuple[SuitePlan, bool]] | None = None,
        durations_known: bool = False,
        budget: int = 2,
        room: int | None = None,
        in_order: bool = True,
    ) -> None:
        plans = suites or [(SuitePlan("unit", 0, None, budget), False)]
        self.work = {}
        for number, (plan, _) in enumerate(plans):
            # Each suite its own tests: the first suite's, shifted by 1000 per suite.
            mine = [
                WorkUnit(tuple(t + 1000 * number for t in u.tests), u.predicted, u.scope)
                for u in units
            ]
            tests = sorted(t for unit in mine for t in unit.tests)
            self.work[plan.name] = SuiteWork(plan.name, tests, mine, durations_known, ())
        self.clock = FakeClock()
        self.durations = durations
        self.agents: dict[str, AgentState] = {}
        self.sim: dict[str, SimAgent] = {}
        self.reported: list[int] = []
        self.sent: list[tuple[str, object]] = []
        self.room = room  # places the fleet still has (None: any number)
        self.dispatcher = Dispatcher(
            work=self.work,
            agents=self.agents,
            reserve=self._reserve,
            done=lambda test: test in self.reported,
            wall_clock=self.clock,
            in_order=in_order,
        )
        self.pending = deque(plans)
        self.budget = budget
        self._finishing: list[tuple[float, int, str]] = []
        self._ticket = 0

    def _reserve(self, suite: str, names: Sequence[str]) -> bool:
        if self.room is None:
            return True
        if len(names) > self.room:
            return False
        self.room -= len(names)
        return True

    def apply(self) -> None:
        while self.dispatcher.outbox:
            self._apply(self.dispatcher.take_decisions())

    def _apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            match decision:
                case StartAgents(agents=wanted):
                    for suite, agent_id in wanted:
                        record = AgentRecord(agent_id, suite, "local", self.clock.now)
                        self.agents[agent_id] = AgentState(record, None, suite)  # type: ignore[arg-type]
                        self.sim[agent_id] = SimAgent()
                    for _, agent_id in wanted:
                        self.ready(agent_id)
                case Send(agent_id=agent_id, command=command):
                    self.sent.append((agent_id, command))
                    self._deliver(agent_id, command)

    def ready(self, agent_id: str) -> None:
        agent = self.agents[agent_id]
        agent.ready = True
        agent.record.ready_at = self.clock.now
        self.dispatcher.dispatch(agent)

    def _deliver(self, agent_id: str, command: object) -> None:
        sim = self.sim[agent_id]
        match command:
            case RunTests(indices=indices):
                sim.queue.extend(indices)
            case Shutdown(drop_pending=drop):
                sim.shutdown = True
                if drop:
                    sim.queue.clear()
            case ReturnTests(units=units):
                # The agent's queue holds what it has not started; its head stays.
                returned = withdraw(sim.queue, units) if sim.running is None else None
                if sim.running is not None:
                    waiting = deque([sim.running, *sim.queue])
                    returned = withdraw(waiting, units)
                    waiting.popleft()
                    sim.queue = waiting
                self.dispatcher.tests_returned(self.agents[agent_id], returned or ())
        self._start_tests()

    def _start_tests(self) -> None:
        for agent_id, sim in self.sim.items():
            if sim.ended or sim.running is not None:
                continue
            if sim.queue and (len(sim.queue) >= 2 or sim.shutdown):
                sim.running = sim.queue.popleft()
                self._ticket += 1
                ends = self.clock.now + self.durations.get(sim.running, 1.0)
                heapq.heappush(self._finishing, (ends, self._ticket, agent_id))
            elif sim.shutdown and not sim.queue:
                sim.ended = True
                agent = self.agents[agent_id]
                if self.dispatcher.pools[agent.suite].reclaiming == agent_id:
                    pass  # it answered before ending (ReturnTests handled at delivery)
                if not self.dispatcher.agent_ended(agent, crashed=False):
                    raise AssertionError(f"{agent.suite}: no agent could be started")

    def run(self, *, until: float = 1e9) -> None:
        self.dispatcher.start_ready(self.pending, self.budget)
        self.apply()
        self._start_tests()
        self.apply()
        while self._finishing and self.clock.now <= until:
            ends, _, agent_id = heapq.heappop(self._finishing)
            self.clock.now = ends
            sim = self.sim[agent_id]
            index, sim.running = sim.running, None
            assert index is not None
            sim.ran.append(index)
            self.reported.append(index)
            agent = self.agents[agent_id]
            self.dispatcher.tests_reported(agent, index, self.durations.get(index, 1.0))
            self.dispatcher.dispatch(agent)
            self.apply()
            self._start_tests()
            self.apply()
            self._start_ready()

    def _start_ready(self) -> None:
        """What the controller's loop does after every event."""
        self.dispatcher.start_ready(self.pending, self.budget)
        if self.dispatcher.should_grow(self.pending):
            records = {agent_id: agent.record for agent_id, agent in self.agents.items()}
            self.dispatcher.grow(self.budget, records)
        self.apply()
        self._start_tests()
        self.apply()


def modules(*sizes: int) -> list[WorkUnit]:
    units: list[WorkUnit] = []
    test = 0
    for number, size in enumerate(sizes):
        for _ in range(size):
            units.append(WorkUnit((test,), 1.0, scope=f"m{number}"))
            test += 1
    return units


def test_every_test_runs_once_in_collection_order_and_every_agent_is_told_to_finish() -> None:
    sim = Simulation(modules(10, 10, 10), durations={}, budget=3)
    sim.run()
    assert sorted(sim.reported) == list(range(30))
    for agent in sim.sim.values():
        assert agent.ran == sorted(agent.ran)
        assert agent.ended
    shutdowns = [(a, c) for a, c in sim.sent if isinstance(c, Shutdown)]
    assert sorted(a for a, _ in shutdowns) == ["unit-0", "unit-1", "unit-2"]
    assert all(not c.drop_pending for _, c in shutdowns)  # type: ignore[attr-defined]
    # Equal tests on equal agents: they end together, within one test of each other.
    assert sim.clock.now <= 11.0


def test_an_agent_that_ran_dry_gets_the_tests_a_slow_agent_has_not_started() -> None:
    """Quick tests grow the window; the agent whose next test is slow holds a window of
    quick ones behind it. The other, run dry, has them given back (longest-first order,
    where an agent may take tests from before its last)."""
    durations = dict.fromkeys(range(80), 0.01)
    durations[5] = 20.0
    sim = Simulation(modules(40, 40), durations=durations, budget=2, in_order=False)
    sim.run()
    [(victim, returned)] = [(a, c) for a, c in sim.sent if isinstance(c, ReturnTests)]
    assert victim == "unit-0"
    given_back = {t for unit in returned.units for t in unit}  # type: ignore[attr-defined]
    assert len(given_back) >= 3
    assert given_back <= set(sim.sim["unit-1"].ran)
    assert not given_back & set(sim.sim["unit-0"].ran)
    assert sorted(sim.reported) == list(range(80))
    # The slow test bounds the run; nothing waited behind it.
    assert sim.clock.now < 20.2


def test_in_order_an_agent_never_goes_back_for_tests_before_its_last() -> None:
    durations = dict.fromkeys(range(80), 0.01)
    durations[5] = 20.0
    sim = Simulation(modules(40, 40), durations=durations, budget=2)
    sim.run()
    assert not [c for _, c in sim.sent if isinstance(c, ReturnTests)]
    for agent in sim.sim.values():
        assert agent.ran == sorted(agent.ran)
    assert sorted(sim.reported) == list(range(80))


def test_stop_everything_drops_every_agents_pending_tests_and_sends_no_more() -> None:
    sim = Simulation(modules(20), durations={}, budget=2)
    sim.run(until=3.0)
    before = len(sim.sent)
    sim.dispatcher.stop_everything()
    sim.dispatcher.stop_everything()  # once only
    sim.apply()
    after = sim.sent[before:]
    assert sorted(a for a, _ in after) == ["unit-0", "unit-1"]
    assert all(isinstance(c, Shutdown) and c.drop_pending for _, c in after)
    for agent in sim.agents.values():
        sim.dispatcher.dispatch(agent)
    assert sim.dispatcher.take_decisions() == []


def test_a_suite_starts_when_the_budget_has_room_and_an_exclusive_one_runs_alone() -> None:
    a = SuitePlan("a", 4, None, 2)
    b = SuitePlan("b", 4, None, 1)
    serial = SuitePlan("serial", 4, None, 1)
    sim = Simulation(
        modules(4), durations={}, suites=[(a, False), (b, False), (serial, True)], budget=2
    )
    started = sim.dispatcher.start_ready(sim.pending, sim.budget)
    assert [p.work.name for p in started] == ["a"]  # b would exceed the budget
    assert [d for d in sim.dispatcher.take_decisions()] == [
        StartAgents((("a", "a-0"), ("a", "a-1")))
    ]
    sim.pending.appendleft((a, False))
    sim.dispatcher.pools.clear()
    sim.run()
    starts = [s for s in sim.sim]
    assert starts == ["a-0", "a-1", "b-0", "serial-0"]
    # The exclusive suite's agent started only once no other agent was live.
    serial_start = sim.agents["serial-0"].record.started_at
    others_end = max(sim.agents[a].record.ready_at or 0.0 for a in ("a-0", "a-1", "b-0"))
    assert serial_start >= others_end
    assert sorted(sim.reported) == [*range(4), *range(1000, 1004), *range(2000, 2004)]


def test_no_place_for_a_suite_waits_and_a_replacement_needs_a_free_place() -> None:
    sim = Simulation(modules(4), durations={}, budget=2, room=1)
    assert sim.dispatcher.start_ready(sim.pending, sim.budget) == []
    assert sim.dispatcher.take_decisions() == []
    sim.room = 2
    [pool] = sim.dispatcher.start_ready(sim.pending, sim.budget)
    assert sim.dispatcher.replace(pool) is False  # no room left for a third
    assert pool.next_number == 2
    sim.room = 1
    assert sim.dispatcher.replace(pool) is True
    assert sim.dispatcher.take_decisions()[-1] == StartAgents((("unit", "unit-2"),))
    assert pool.agents == {"unit-0", "unit-1", "unit-2"}


def test_a_clean_exit_with_tests_held_gives_them_to_the_others() -> None:
    sim = Simulation(modules(10), durations={}, budget=2)
    sim.dispatcher.start_ready(sim.pending, sim.budget)
    sim.apply()
    first, second = sim.agents["unit-0"], sim.agents["unit-1"]
    held = list(first.in_flight)
    assert held
    assert sim.dispatcher.agent_ended(first, crashed=False) is True
    assert not first.in_flight
    sim.apply()
    given = [c.indices for a, c in sim.sent if a == "unit-1" and isinstance(c, RunTests)]
    assert set(held) <= {t for batch in given for t in batch} | set(
        sim.dispatcher.pools["unit"].queue.drain()
    )
    assert "unit-0" not in sim.dispatcher.pools["unit"].agents
    assert second.record.id in sim.dispatcher.pools["unit"].agents


def test_the_last_agent_leaving_work_behind_is_replaced_or_the_suite_is_given_up() -> None:
    sim = Simulation(modules(6), durations={}, budget=1, room=1)
    sim.dispatcher.start_ready(sim.pending, sim.budget)
    sim.apply()
    agent = sim.agents["unit-0"]
    sim.room = 0
    assert sim.dispatcher.agent_ended(agent, crashed=False) is False
    sim.room = 1
    agent.finished = False
    sim.dispatcher.pools["unit"].agents.add("unit-0")
    assert sim.dispatcher.agent_ended(agent, crashed=False) is True
    assert sim.dispatcher.take_decisions()[-1] == StartAgents((("unit", "unit-1"),))


def test_a_retry_goes_only_to_an_agent_started_after_the_crash() -> None:
    sim = Simulation(modules(6), durations={}, budget=2)
    sim.dispatcher.start_ready(sim.pending, sim.budget)
    sim.apply()
    pool = sim.dispatcher.pools["unit"]
    old = sim.agents["unit-0"]
    old.in_flight.clear()
    pool.retries.append((99, 5.0))  # died at 5 s; unit-0 started at 0 s
    sim.dispatcher.dispatch(old)
    assert all(99 not in c.indices for _, c in sim.sent if isinstance(c, RunTests))
    sim.dispatcher.take_decisions()
    sim.clock.now = 6.0
    assert sim.dispatcher.replace(pool)
    sim.apply()  # the fresh agent starts and is dispatched
    fresh = [c.indices for a, c in sim.sent if a == "unit-2" and isinstance(c, RunTests)]
    assert fresh and fresh[0][0] == 99


def test_freed_budget_grows_a_running_pool_with_work_left() -> None:
    big = SuitePlan("big", 40, None, 1, items=1, min_items=1)
    small = SuitePlan("small", 40, None, 1, items=1, min_items=1)
    durations = {**dict.fromkeys(range(40), 1.0), **dict.fromkeys(range(1000, 1040), 0.01)}
    sim = Simulation(modules(40), durations=durations, suites=[(big, False), (small, False)])
    sim.run()
    assert "big-1" in sim.sim, "the freed slot did not go to the suite with work left"
    assert "small-1" not in sim.sim
    assert sorted(sim.reported) == [*range(40), *range(1000, 1040)]
    # The second agent of the slow suite took its share of what was left.
    assert len(sim.sim["big-1"].ran) > 10


def modules_from(first: int, count: int) -> list[WorkUnit]:
    return [WorkUnit((first + n,), 1.0, scope="s") for n in range(count)]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    seconds=st.lists(st.floats(0.01, 5.0), min_size=1, max_size=40),
    agents=st.integers(1, 4),
    known=st.booleans(),
)
def test_any_durations_run_every_test_once_each_agent_in_collection_order(
    sizes: list[int], seconds: list[float], agents: int, known: bool
) -> None:
    units = modules(*sizes)
    count = sum(sizes)
    durations = {i: seconds[i % len(seconds)] for i in range(count)}
    if known:
        units = [WorkUnit(u.tests, durations[u.tests[0]], scope=u.scope) for u in units]
    sim = Simulation(units, durations=durations, durations_known=known, budget=agents)
    sim.run()
    assert sorted(sim.reported) == list(range(count))
    for agent in sim.sim.values():
        assert agent.ran == sorted(agent.ran)
        assert agent.ended
    # No agent was left waiting for a test that never came (the run ended with all told).
    assert all(a.shutdown_sent for a in sim.agents.values())


@pytest.mark.parametrize("drop", [True, False])
def test_shut_down_is_sent_once(drop: bool) -> None:
    sim = Simulation(modules(2), durations={}, budget=1)
    sim.dispatcher.start_ready(sim.pending, sim.budget)
    sim.dispatcher.take_decisions()
    agent = sim.agents.get("unit-0") or AgentState(
        AgentRecord("unit-0", "unit", "local", 0.0),
        None,  # type: ignore[arg-type]
        "unit",
    )
    sim.agents["unit-0"] = agent
    sim.dispatcher.shut_down(agent, drop_pending=drop)
    sim.dispatcher.shut_down(agent, drop_pending=not drop)
    assert sim.dispatcher.take_decisions() == [Send("unit-0", Shutdown(drop_pending=drop))]
