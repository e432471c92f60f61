"""The controller's decisions: which agent gets which tests, gives tests back, grows or stops.

Pure bookkeeping over the agents' and pools' state: every method reads and updates that
state and appends what the controller must do to ``outbox`` as typed decisions, which the
loop carries out over the transport (``Controller._apply``). Nothing here sends, starts,
sleeps or reads a clock of its own, so the decisions are tested in one process with a fake
clock (tests/unit/test_policy.py).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, final

from pytest_parallel_agents.controller.pools import AgentState, PoolState, SuiteWork
from pytest_parallel_agents.controller.runstate import AgentRecord
from pytest_parallel_agents.planning.scheduling import SuiteQueue, hold_limit, refill
from pytest_parallel_agents.planning.sizing import SuitePlan, grow
from pytest_parallel_agents.transport.protocol import Command, ReturnTests, RunTests, Shutdown


@final
@dataclass(frozen=True)
class Send:
    """Send ``command`` to the agent."""

    agent_id: str
    command: Command


@final
@dataclass(frozen=True)
class StartAgents:
    """Start these agents, ``(suite, agent id)`` each; their places are reserved already."""

    agents: tuple[tuple[str, str], ...]


Decision: TypeAlias = Send | StartAgents


@final
@dataclass
class Dispatcher:
    """Feeds every pool's agents, steals and reclaims for those that ran dry, stops them.

    ``reserve(suite, agent ids)`` asks the fleet for places (False: no host has room);
    ``done(test)`` tells a test already reported (a retry that raced its first report);
    ``wall_clock`` stamps dispatches for the watchdog, in the agents' clock (``time.time``).
    """

    work: Mapping[str, SuiteWork]
    agents: dict[str, AgentState]
    reserve: Callable[[str, Sequence[str]], bool]
    done: Callable[[int], bool]
    wall_clock: Callable[[], float]
    in_order: bool = True
    pools: dict[str, PoolState] = field(default_factory=dict)
    outbox: list[Decision] = field(default_factory=list)
    stopping: bool = False
    exclusive_running: bool = False

    def take_decisions(self) -> list[Decision]:
        decisions, self.outbox = self.outbox, []
        return decisions

    def live_agents(self) -> int:
        return sum(1 for agent in self.agents.values() if not agent.finished)

    # --- starting suites and agents -----------------------------------------------------

    def start_ready(
        self, pending: deque[tuple[SuitePlan, bool]], budget: int, *, can_grow: bool = True
    ) -> list[PoolState]:
        """Start the suites at the head of ``pending`` that the budget has room for.

        Suites start in the plan's order, each as soon as enough of the budget is free; an
        exclusive suite starts only when nothing runs, and nothing starts beside it. Returns
        the pools started; then grows running pools into budget no waiting suite needs.
        """
        starts: list[PoolState] = []
        while pending:
            suite, exclusive = pending[0]
            live = self.live_agents() + sum(pool.size for pool in starts)
            if self.exclusive_running and live:
                break
            if exclusive and live:
                break
            if live and live + suite.agents > budget:
                break
            names = [f"{suite.name}-{n}" for n in range(suite.agents)]
            if not self.reserve(suite.name, names):
                break  # its hosts are busy with other suites
            pending.popleft()
            self.exclusive_running = exclusive
            work = self.work[suite.name]
            queue = SuiteQueue(
                work.units, names, durations_known=work.durations_known, in_order=self.in_order
            )
            pool = PoolState(work, queue, suite.agents, suite)
            pool.next_number = suite.agents
            self.pools[suite.name] = pool
            starts.append(pool)
            if exclusive:
                break
        wanted = [
            (pool.work.name, f"{pool.work.name}-{n}") for pool in starts for n in range(pool.size)
        ]
        if wanted:
            self._start(wanted)
        return starts

    def should_grow(self, pending: deque[tuple[SuitePlan, bool]]) -> bool:
        """Growing would take budget a waiting suite needs, unless it is exclusive: that one
        waits for everything else to end, which growing brings sooner."""
        return not pending or pending[0][1]

    def grow(self, budget: int, records: Mapping[str, AgentRecord]) -> dict[str, int]:
        """Give budget that a finished suite freed to suites still running (work-conserving).

        Returns the agents added per suite.
        """
        free = budget - self.live_agents()
        added: dict[str, int] = {}
        if free <= 0 or self.stopping:
            return added
        running = [
            view for pool in self.pools.values() if (view := pool.growth_view(records, budget))
        ]
        for name, count in grow(running, free).items():
            pool = self.pools[name]
            for _ in range(count):
                if not self.replace(pool):
                    break
                pool.size += 1
                added[name] = added.get(name, 0) + 1
        return added

    def replace(self, pool: PoolState) -> bool:
        """Start one more agent for the pool; False when no gateway is free for it."""
        replacement = f"{pool.work.name}-{pool.next_number}"
        if not self.reserve(pool.work.name, [replacement]):
            return False
        pool.next_number += 1
        pool.queue.add_agent(replacement)
        self._start([(pool.work.name, replacement)])
        return True

    def _start(self, wanted: list[tuple[str, str]]) -> None:
        for suite, agent_id in wanted:
            self.pools[suite].agents.add(agent_id)
        self.outbox.append(StartAgents(tuple(wanted)))

    # --- feeding agents -----------------------------------------------------------------

    def dispatch(self, agent: AgentState) -> None:
        """Keep the agent's window filled; tell it to finish when its suite has nothing left.

        The agent runs a test only once it knows the next one (or that none will come), so
        after every dispatch it must hold two tests or have been told to shut down.
        """
        if agent.shutdown_sent or agent.finished:
            return
        if self.stopping:
            self.shut_down(agent, drop_pending=True)
            return
        pool = self.pools[agent.suite]
        limit = hold_limit(pool.window(), pool.queue.total_pending, max(1, len(pool.agents)))
        want = refill(len(agent.in_flight), limit)
        if not want:
            return
        batch: list[int] = []
        while pool.retries and agent.record.started_at > pool.retries[0][1]:
            batch.append(pool.retries.popleft()[0])
            want -= 1
        batch += pool.queue.top_up(
            agent.record.id, len(agent.in_flight) + len(batch), want, skip=self.done
        )
        if batch:
            agent.in_flight.extend(batch)
            agent.last_dispatch = self.wall_clock()
            self.outbox.append(Send(agent.record.id, RunTests(tuple(batch))))
        agent.awaiting_return = False
        if not pool.queue.exhausted_for(agent.record.id):
            return
        if len(agent.in_flight) <= 2:
            # Nothing left to hand out but what other agents hold and have not started.
            self._reclaim(pool, agent)
        if len(agent.in_flight) <= 1 and not pool.retries_for(agent):
            if pool.reclaiming is not None:
                agent.awaiting_return = True  # tests are on their way back: wait for them
                return
            # Nothing left it could be given (retries wait for a fresh agent): it may run its
            # last test with nextitem=None. Waiting on would hold that test back for good.
            self.shut_down(agent, drop_pending=False)

    def _reclaim(self, pool: PoolState, asking: AgentState) -> None:
        """Ask the agent holding the most unstarted tests to give back those behind its next.

        An agent holds a window of tests it has not started; near the end, one that took a
        window of slow tests would run them all while the others stand idle (a slow module
        met without durations). The units it gives back go to the agents that ran dry.
        """
        if pool.reclaiming is not None or self.stopping:
            return
        holdings = {
            other.record.id: other.in_flight
            for other in self._members(pool)
            if other is not asking and not other.finished and other.ready
        }
        offer = pool.queue.reclaim_offer(holdings, asking.record.id)
        if offer is not None:
            victim, units = offer
            pool.reclaiming = victim
            self.outbox.append(Send(victim, ReturnTests(tuple(units))))

    def tests_reported(self, agent: AgentState, index: int, busy: float) -> None:
        """Book one finished test of the agent (its report is the replayer's business)."""
        if agent.in_flight and agent.in_flight[0] == index:
            agent.in_flight.popleft()
        else:
            with contextlib.suppress(ValueError):
                agent.in_flight.remove(index)
        pool = self.pools[agent.suite]
        agent.record.tests += 1
        agent.record.busy_seconds += busy
        pool.done_tests += 1
        pool.busy += busy
        pool.fruitless = 0

    def tests_returned(self, agent: AgentState, units: Sequence[tuple[int, ...]]) -> int:
        """The agent gave back these units: they go to the agents that ran dry. Returns how
        many tests came back into the queue."""
        pool = self.pools[agent.suite]
        if pool.reclaiming == agent.record.id:
            pool.reclaiming = None
        for unit in units:
            for index in unit:
                with contextlib.suppress(ValueError):
                    agent.in_flight.remove(index)
        returned = 0
        if units and not self.stopping:
            pool.queue.give_back(units)
            returned = sum(map(len, units))
        self.serve_waiting(pool)
        return returned

    def serve_waiting(self, pool: PoolState) -> None:
        """Dispatch the pool's agents that wait for work, those holding fewest first."""
        waiting = [
            a
            for a in self._members(pool)
            if a.ready and not a.finished and not a.shutdown_sent and len(a.in_flight) < 2
        ]
        for agent in sorted(waiting, key=lambda a: len(a.in_flight)):
            self.dispatch(agent)

    def requeue(self, pool: PoolState, tests: list[int]) -> None:
        """Tests an agent held and will not run go back to the suite, to its other agents."""
        pool.queue.requeue(tests)
        for other in self._members(pool):
            self.dispatch(other)

    def _members(self, pool: PoolState) -> list[AgentState]:
        """The pool's agents the controller has started (one decided on a moment ago and
        not started yet is dispatched once it is ready)."""
        return [agent for agent_id in pool.agents if (agent := self.agents.get(agent_id))]

    # --- ending agents ------------------------------------------------------------------

    def agent_ended(self, agent: AgentState, *, crashed: bool) -> bool:
        """The agent is gone: its slot is free and its held tests go back (after a clean
        exit; recovery sorts a crashed agent's). Returns False when the suite has work left
        and no agent can be started for it: the caller gives the suite up."""
        agent.finished = True
        pool = self.pools[agent.suite]
        pool.agents.discard(agent.record.id)
        # Asked to give tests back and gone before it answered: those waiting stop waiting.
        reclaimed_from_it = pool.reclaiming == agent.record.id
        if reclaimed_from_it:
            pool.reclaiming = None
        if agent.in_flight and not self.stopping:
            # A clean exit with tests outstanding: they go back to the suite.
            self.requeue(pool, list(agent.in_flight))
            agent.in_flight.clear()
        startable = True
        if (
            not crashed
            and not self.stopping
            and not pool.agents
            and (not pool.queue.empty or pool.retries)
        ):
            # Its last agent finished (told to, when the suite degraded) with work left.
            startable = self.replace(pool)
        if reclaimed_from_it and not crashed and not self.stopping:
            self.serve_waiting(pool)  # (after a crash, recovery does once it requeued)
        return startable

    def shut_down(self, agent: AgentState, *, drop_pending: bool) -> None:
        """Tell the agent to end its session (once): no more tests will come."""
        if agent.shutdown_sent or agent.finished:
            return
        agent.shutdown_sent = True
        self.outbox.append(Send(agent.record.id, Shutdown(drop_pending=drop_pending)))

    def stop_everything(self) -> None:
        """``-x``, ``--maxfail``, a crash past the limits: every agent drops what it holds."""
        if self.stopping:
            return
        self.stopping = True
        for agent in self.agents.values():
            self.shut_down(agent, drop_pending=True)
