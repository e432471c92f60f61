"""What any scheduler could reach on a suite of known durations: the bound, greedy, LPT.

Used by ``run.py`` to put the ``sleep`` suite's measured times beside what is reachable:
the lower bound ``max(longest, total / n)``; greedy list scheduling in collection order
(each test, in order, to the first agent that is free), which is the best a scheduler can
plan that knows no durations and keeps collection order; longest-processing-time first,
which is what a scheduler gets from exact stored durations; and the plugin's own dispatch
(``queue_schedule``: its queue, windows and stealing, without start-up or messages), so
that a measured gap splits into what the policy costs and what the overhead costs.
``arrangements`` deals the same durations out in other orders: without durations, where
the long tests happen to sit decides the end, and no scheduler can know.
Start-up is not modelled.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

from pytest_parallel_agents.planning.scheduling import (
    SuiteQueue,
    WorkUnit,
    hold_limit,
    refill,
    window_for,
    withdraw,
)

__all__ = [
    "arrangements",
    "collection_layout",
    "collection_order",
    "deal",
    "list_schedule",
    "lower_bound",
    "lpt_schedule",
    "queue_schedule",
]


def lower_bound(durations: Sequence[float], n: int) -> float:
    """No schedule on ``n`` agents ends before this."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not durations:
        return 0.0
    return max(max(durations), sum(durations) / n)


def list_schedule(durations: Sequence[float], n: int) -> float:
    """Makespan of handing each test, in the given order, to the agent that is free first."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ends = [0.0] * n
    for seconds in durations:
        heapq.heapreplace(ends, ends[0] + seconds)
    return max(ends)


def lpt_schedule(durations: Sequence[float], n: int) -> float:
    """Makespan of longest-processing-time first (Graham: at most 4/3 - 1/(3n) of optimal)."""
    return list_schedule(sorted(durations, reverse=True), n)


def collection_layout(recorded: Mapping[str, float]) -> list[tuple[str, float]]:
    """(file, seconds) of ``path::test_K`` node ids in pytest's order: by file, then by K."""

    def key(nodeid: str) -> tuple[str, int, str]:
        path, _, name = nodeid.partition("::")
        _, _, number = name.rpartition("_")
        return (path, int(number), name) if number.isdigit() else (path, -1, name)

    return [(nodeid.partition("::")[0], recorded[nodeid]) for nodeid in sorted(recorded, key=key)]


def collection_order(recorded: Mapping[str, float]) -> list[float]:
    """Durations of ``path::test_K`` node ids in pytest's order: by file, then by K."""
    return [seconds for _, seconds in collection_layout(recorded)]


def queue_schedule(
    durations: Sequence[float],
    scopes: Sequence[str],
    n: int,
    *,
    known: bool,
    in_order: bool = False,
) -> float:
    """Makespan of the plugin's dispatch on ``n`` agents that all start at 0, no overhead.

    ``durations`` and ``scopes`` (each test's module) are in collection order; ``known``
    says whether the queue is given the durations (LPT) or plans without (chunks). The
    rules are the controller's (``controller.Controller.dispatch``): each agent holds up to
    ``hold_limit`` tests, topped up by ``refill`` and ``SuiteQueue.top_up`` when a test
    ends; it starts a test only once it holds the next one or has been told to finish;
    once nothing is left to hand out, the agent holding the most unstarted tests (at least
    ``MIN_RECLAIM`` beyond its next) is asked to give back those behind its next one (it
    does between two tests), and agents left with one test or none wait for them.
    ``in_order`` simulates ``--agents-order collection`` (the default of a run); without it
    ``longest-first``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(durations) != len(scopes):
        raise ValueError("durations and scopes differ in length")
    units = [
        WorkUnit((i,), seconds if known else 0.0, scope=scope)
        for i, (seconds, scope) in enumerate(zip(durations, scopes, strict=True))
    ]
    return _Simulation(durations, units, n, known, in_order).run()


class _Simulation:
    """The controller's dispatch and the agents' loops, in simulated time."""

    def __init__(
        self,
        durations: Sequence[float],
        units: list[WorkUnit],
        n: int,
        known: bool,
        in_order: bool,
    ) -> None:
        self.durations = durations
        self.n = n
        self.agents = [f"agent{k}" for k in range(n)]
        self.queue = SuiteQueue(units, self.agents, durations_known=known, in_order=in_order)
        self.held: dict[str, deque[int]] = {agent: deque() for agent in self.agents}
        self.running = dict.fromkeys(self.agents, False)
        self.finishing = dict.fromkeys(self.agents, False)
        self.reclaiming: tuple[str, list[tuple[int, ...]]] | None = None
        self.done, self.busy = 0, 0.0
        self.ticket = itertools.count()  # orders agents that end at the same moment
        self.ends: list[tuple[float, int, str]] = []

    def run(self) -> float:
        for agent in self.agents:
            self.dispatch(agent, 0.0)
        end = 0.0
        while self.ends:
            now, _, agent = heapq.heappop(self.ends)
            test = self.held[agent].popleft()
            self.running[agent] = False
            self.done, self.busy, end = self.done + 1, self.busy + self.durations[test], now
            if self.reclaiming is not None and self.reclaiming[0] == agent:
                self.give_back(agent, now)  # read between two tests, before the report
            self.dispatch(agent, now)
        if self.done != len(self.durations):
            raise RuntimeError(f"the queue ran {self.done} of {len(self.durations)} tests")
        return end

    def start(self, agent: str, now: float) -> None:
        mine = self.held[agent]
        if not self.running[agent] and mine and (len(mine) >= 2 or self.finishing[agent]):
            self.running[agent] = True
            heapq.heappush(self.ends, (now + self.durations[mine[0]], next(self.ticket), agent))

    def dispatch(self, agent: str, now: float) -> None:
        mine = self.held[agent]
        if not self.finishing[agent]:
            limit = hold_limit(window_for(self.done, self.busy), self.queue.total_pending, self.n)
            want = refill(len(mine), limit)
            if want:
                mine.extend(self.queue.top_up(agent, len(mine), want))
                if self.queue.exhausted_for(agent):
                    if len(mine) <= 2:
                        self.reclaim(agent, now)
                    if len(mine) <= 1 and self.reclaiming is None:
                        self.finishing[agent] = True
        self.start(agent, now)

    def reclaim(self, asking: str, now: float) -> None:
        if self.reclaiming is not None:
            return
        offer = self.queue.reclaim_offer(
            {other: self.held[other] for other in self.agents if other != asking}, asking
        )
        if offer is not None:
            self.reclaiming = offer
            if not self.running[offer[0]]:
                self.give_back(offer[0], now)  # waiting for work: it reads at once

    def give_back(self, agent: str, now: float) -> None:
        assert self.reclaiming is not None
        back = withdraw(self.held[agent], self.reclaiming[1])  # as the agent does
        self.reclaiming = None
        self.queue.give_back(back)
        hungry = [a for a in self.agents if not self.finishing[a] and len(self.held[a]) < 2]
        for other in sorted(hungry, key=lambda a: len(self.held[a])):
            self.dispatch(other, now)


def deal(durations: Sequence[float], files: int) -> list[tuple[str, float]]:
    """The sleep suite's layout: test i goes to file ``i % files``; (file, seconds) in
    collection order (file by file, each file's tests in the order dealt)."""
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    return [
        (f"test_sleep_{f:02d}.py", durations[i])
        for f in range(files)
        for i in range(f, len(durations), files)
    ]


def arrangements(
    durations: Sequence[float], files: int, draws: int, seed: int = 0
) -> Iterator[list[tuple[str, float]]]:
    """``draws`` reshufflings of the same durations, each laid out by ``deal``."""
    rng = random.Random(seed)
    shuffled = list(durations)
    for _ in range(draws):
        rng.shuffle(shuffled)
        yield deal(shuffled, files)
