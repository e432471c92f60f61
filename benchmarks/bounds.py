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

from pytest_parallel_agents.scheduling import (
    SuiteQueue,
    WorkUnit,
    hold_limit,
    refill,
    window_for,
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
    durations: Sequence[float], scopes: Sequence[str], n: int, *, known: bool
) -> float:
    """Makespan of the plugin's dispatch on ``n`` agents that all start at 0, no overhead.

    ``durations`` and ``scopes`` (each test's module) are in collection order; ``known``
    says whether the queue is given the durations (LPT) or plans without (chunks). The
    controller's rules, from ``controller.Controller.dispatch``: each agent holds up to
    ``hold_limit`` tests, topped up by ``refill`` and ``SuiteQueue.top_up`` when it
    reports; it always holds two (it runs a test only once it knows the next one) and
    steals only when it runs dry.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(durations) != len(scopes):
        raise ValueError("durations and scopes differ in length")
    units = [
        WorkUnit((i,), seconds if known else 0.0, scope=scope)
        for i, (seconds, scope) in enumerate(zip(durations, scopes, strict=True))
    ]
    agents = [f"agent{k}" for k in range(n)]
    queue = SuiteQueue(units, agents, durations_known=known)
    held: dict[str, deque[int]] = {agent: deque() for agent in agents}
    done, busy = 0, 0.0

    def dispatch(agent: str) -> None:
        mine = held[agent]
        want = refill(len(mine), hold_limit(window_for(done, busy), queue.total_pending, n))
        if want:
            mine.extend(queue.top_up(agent, len(mine), want))

    ticket = itertools.count()  # orders agents that end at the same moment
    ends: list[tuple[float, int, str]] = []
    for agent in agents:
        dispatch(agent)
        if held[agent]:
            heapq.heappush(ends, (durations[held[agent][0]], next(ticket), agent))
    end = 0.0
    while ends:
        now, _, agent = heapq.heappop(ends)
        test = held[agent].popleft()
        done, busy, end = done + 1, busy + durations[test], now
        dispatch(agent)
        if held[agent]:
            heapq.heappush(ends, (now + durations[held[agent][0]], next(ticket), agent))
    if done != len(durations):
        raise RuntimeError(f"the queue ran {done} of {len(durations)} tests")
    return end


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
