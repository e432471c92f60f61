"""Size each suite's agent pool and arrange the suites into waves within a budget."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import final

__all__ = [
    "Plan",
    "RunningPool",
    "SuiteDemand",
    "SuitePlan",
    "Wave",
    "agents_for",
    "grow",
    "plan_suites",
]


def agents_for(tests: int, items: int, min_items: int, max_agents: int) -> int:
    """How many agents a suite of ``tests`` tests gets, aiming at ``items`` tests per agent.

    A suite smaller than ``min_items`` runs on a single agent (spawning is not
    worth it); otherwise one agent per ``items`` tests, rounded up, capped at
    ``max_agents``.
    """
    if tests < 0:
        raise ValueError(f"tests must be >= 0, got {tests}")
    if items < 1:
        raise ValueError(f"items must be >= 1, got {items}")
    if max_agents < 1:
        raise ValueError(f"max_agents must be >= 1, got {max_agents}")
    if tests == 0:
        return 0
    if tests < min_items:
        return 1
    return max(1, min(max_agents, math.ceil(tests / items)))


@final
@dataclass(frozen=True)
class SuiteDemand:
    """What a suite asks for: its size, its predicted duration and its settings."""

    name: str
    tests: int
    predicted_seconds: float | None
    items: int = 5
    min_items: int = 3
    max_agents: int | None = None
    exclusive: bool = False


@final
@dataclass(frozen=True)
class SuitePlan:
    """A suite together with the number of agents it was granted."""

    name: str
    tests: int
    predicted_seconds: float | None
    agents: int
    # The suite's formula settings, so that a running pool can be sized again (``grow``);
    # settings, not the plan's outcome, so left out of comparisons.
    items: int = field(default=5, compare=False)
    min_items: int = field(default=3, compare=False)
    max_agents: int | None = field(default=None, compare=False)


@final
@dataclass(frozen=True)
class Wave:
    """Suites that run at the same time; a wave starts once the previous one ended."""

    suites: tuple[SuitePlan, ...]
    exclusive: bool

    @property
    def agents(self) -> int:
        return sum(suite.agents for suite in self.suites)


@final
@dataclass(frozen=True)
class Plan:
    """The waves to run, in order, under an agent budget."""

    budget: int
    waves: tuple[Wave, ...]

    @property
    def suites(self) -> tuple[SuitePlan, ...]:
        return tuple(suite for wave in self.waves for suite in wave.suites)

    @property
    def in_process(self) -> bool:
        """True when one agent at a time suffices, so no worker needs to be spawned."""
        return all(wave.agents <= 1 for wave in self.waves)

    @property
    def peak_agents(self) -> int:
        return max((wave.agents for wave in self.waves), default=0)


def _want(demand: SuiteDemand, budget: int) -> int:
    cap = min(budget, demand.max_agents or budget)
    return agents_for(demand.tests, demand.items, demand.min_items, cap)


def _works(demands: Sequence[SuiteDemand]) -> list[float]:
    # Mixing seconds with test counts would be meaningless, so one unknown duration
    # switches the whole group to test counts; so does an all-zero prediction,
    # which carries no information about relative size.
    seconds = [demand.predicted_seconds for demand in demands]
    known = [s for s in seconds if s is not None]
    if len(known) == len(seconds) and sum(known) > 0:
        return [max(0.0, s) for s in known]
    return [float(demand.tests) for demand in demands]


def _split_waves(count: int, works: Sequence[float], budget: int) -> list[list[int]]:
    """Indices of the suites in each wave, at most ``budget`` per wave, work balanced."""
    if count == 0:
        return []
    if count <= budget:
        return [list(range(count))]
    waves: list[list[int]] = [[] for _ in range(math.ceil(count / budget))]
    loads = [0.0] * len(waves)
    # Largest first (stable on ties) into the least loaded wave with room; fewer
    # suites then lower index break ties so zero-work suites still spread out.
    for index in sorted(range(count), key=lambda i: -works[i]):
        target = min(
            (w for w in range(len(waves)) if len(waves[w]) < budget),
            key=lambda w: (loads[w], len(waves[w]), w),
        )
        waves[target].append(index)
        loads[target] += works[index]
    return [sorted(wave) for wave in waves if wave]


def _share(wants: Sequence[int], works: Sequence[float], budget: int) -> list[int]:
    """Share ``budget`` agents: at least 1 each, never above the want, by work.

    Each extra agent goes to the suite with the most work per agent, which is
    integer water-filling: it minimises the largest work per agent under the caps.
    """
    if sum(wants) <= budget:
        return list(wants)
    if len(wants) > budget:
        raise ValueError(f"{len(wants)} suites cannot share {budget} agents")
    granted = [1] * len(wants)
    # Max-heap on work per agent; the index breaks ties in input order.
    heap = [(-works[i], i) for i in range(len(wants)) if wants[i] > 1]
    heapq.heapify(heap)
    for _ in range(budget - len(wants)):
        if not heap:
            break
        _, index = heapq.heappop(heap)
        granted[index] += 1
        if granted[index] < wants[index]:
            heapq.heappush(heap, (-works[index] / granted[index], index))
    return granted


def _wave(demands: Sequence[SuiteDemand], agents: Sequence[int], exclusive: bool) -> Wave:
    plans = tuple(
        SuitePlan(
            demand.name,
            demand.tests,
            demand.predicted_seconds,
            count,
            demand.items,
            demand.min_items,
            demand.max_agents,
        )
        for demand, count in zip(demands, agents, strict=True)
    )
    return Wave(plans, exclusive)


def plan_suites(demands: Sequence[SuiteDemand], budget: int) -> Plan:
    """Plan the waves: shared waves in input order first, then one wave per exclusive suite."""
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    active = [demand for demand in demands if demand.tests > 0]
    shared = [demand for demand in active if not demand.exclusive]
    exclusive = [demand for demand in active if demand.exclusive]

    waves: list[Wave] = []
    works = _works(shared)
    for indices in _split_waves(len(shared), works, budget):
        members = [shared[i] for i in indices]
        wants = [_want(demand, budget) for demand in members]
        agents = _share(wants, [works[i] for i in indices], budget)
        waves.append(_wave(members, agents, exclusive=False))
    for demand in exclusive:
        waves.append(_wave([demand], [_want(demand, budget)], exclusive=True))
    return Plan(budget, tuple(waves))


@final
@dataclass(frozen=True)
class RunningPool:
    """A suite's pool while it runs, as ``grow`` sees it."""

    name: str
    agents: int  # live agents
    pending_tests: int  # tests not sent to any agent yet
    pending_units: int  # ... in this many units (a group is one: it never splits)
    pending_seconds: float  # what those tests are expected to take, on one agent
    start_seconds: float  # what starting one more agent is expected to take
    items: int
    min_items: int
    max_agents: int  # the suite's cap, already bounded by the budget


def grow(pools: Sequence[RunningPool], free: int) -> dict[str, int]:
    """How many agents to add to each running pool when ``free`` budget slots are idle.

    The plan shares the budget among suites that run together; once one of them ends, its
    slots would idle beside suites that still have work. A pool may grow back to what the
    scaling formula gives its *remaining* tests (never past its cap), and only while the
    share of the remaining work one more agent would take exceeds what starting it costs,
    and while each new agent has a pending unit to take.
    Free slots go one at a time to the pool where one more agent would take the most work.
    """
    if free < 0:
        raise ValueError(f"free must be >= 0, got {free}")
    added = {pool.name: 0 for pool in pools}
    for _ in range(free):
        best: RunningPool | None = None
        best_share = 0.0
        for pool in pools:
            count = pool.agents + added[pool.name]
            if count < 1:
                continue  # a pool with no agent is restarted, not grown
            want = agents_for(pool.pending_tests, pool.items, pool.min_items, pool.max_agents)
            if count >= want or added[pool.name] >= pool.pending_units:
                continue
            share = pool.pending_seconds / (count + 1)
            if share <= pool.start_seconds:
                continue
            if best is None or share > best_share:
                best, best_share = pool, share
        if best is None:
            break
        added[best.name] += 1
    return {name: count for name, count in added.items() if count}
