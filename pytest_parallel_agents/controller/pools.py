"""What the controller knows of each agent and each suite's pool while the run goes on."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import final

from pytest_parallel_agents.controller.runstate import AgentRecord
from pytest_parallel_agents.planning.scheduling import MIN_WINDOW, SuiteQueue, WorkUnit, window_for
from pytest_parallel_agents.planning.sizing import RunningPool, SuitePlan
from pytest_parallel_agents.transport.gateways import AgentLink


@final
@dataclass
class SuiteWork:
    """One suite's share of the run, as the controller needs it."""

    name: str
    tests: list[int]  # indices into the session's items, in collection order
    units: list[WorkUnit]
    durations_known: bool
    files: tuple[str, ...]


@final
@dataclass
class AgentState:
    """One agent as the controller tracks it: what it holds, when it last spoke."""

    record: AgentRecord
    link: AgentLink
    suite: str
    in_flight: deque[int] = field(default_factory=deque)
    shutdown_sent: bool = False
    # Left holding one test or none while tests come back from another agent (ReturnTests).
    awaiting_return: bool = False
    finished: bool = False
    ready: bool = False
    last_seen: float = field(default_factory=time.perf_counter)
    last_dispatch: float = 0.0  # wall clock (time.time), comparable with the agent's slot
    # Set when the watchdog kills the agent: (test it was stuck in, or None; why).
    stuck: tuple[int | None, str] | None = None
    host_root: str = ""  # a remote agent's root on its host (from AgentReady)


@final
@dataclass
class PoolState:
    """One running suite: its queue, its agents, what they did, how it fares after crashes."""

    work: SuiteWork
    queue: SuiteQueue
    size: int
    plan: SuitePlan
    next_number: int = 0
    done_tests: int = 0
    busy: float = 0.0
    agents: set[str] = field(default_factory=set)
    # Tests that killed an agent, waiting for an agent started after that death.
    retries: deque[tuple[int, float]] = field(default_factory=deque)
    crashed: int = 0
    fruitless: int = 0  # crashes in a row with no test to blame
    reclaiming: str | None = None  # the agent asked to give tests back, until it answers
    degraded: bool = False

    def window(self) -> int:
        """How many tests each agent of the pool should hold, from its measured mean."""
        return MIN_WINDOW if self.degraded else window_for(self.done_tests, self.busy)

    def retries_for(self, agent: AgentState) -> bool:
        """Whether the pool holds a retry this agent may run (it started after that crash)."""
        return any(agent.record.started_at > died_at for _, died_at in self.retries)

    def growth_view(self, records: Mapping[str, AgentRecord], budget: int) -> RunningPool | None:
        """The pool as ``sizing.grow`` weighs it; None while it cannot grow (or need not).

        ``records`` are the run's agent records by id (the pool's agents among them).
        """
        pending = self.queue.total_pending
        if self.degraded or not self.done_tests or not pending:
            return None
        starts = [s for a in self.agents if (s := records[a].spawn_seconds) is not None]
        if not starts:
            return None  # no start-up measured yet to weigh its share against
        return RunningPool(
            self.work.name,
            len(self.agents),
            pending,
            self.queue.pending_units,
            pending * self.busy / self.done_tests,
            sum(starts) / len(starts),
            self.plan.items,
            self.plan.min_items,
            min(self.plan.max_agents or budget, budget),
        )
