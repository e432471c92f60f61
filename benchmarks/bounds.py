"""What any scheduler could reach on a suite of known durations: the bound, greedy, LPT.

Used by ``run.py`` to put the ``sleep`` suite's measured times beside what is reachable:
the lower bound ``max(longest, total / n)``; greedy list scheduling in collection order
(each test, in order, to the first agent that is free), which is the best a scheduler can
plan that knows no durations and keeps collection order; and longest-processing-time first,
which is what a scheduler gets from exact stored durations. Start-up is not modelled.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

__all__ = ["collection_order", "list_schedule", "lower_bound", "lpt_schedule"]


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


def collection_order(recorded: Mapping[str, float]) -> list[float]:
    """Durations of ``path::test_K`` node ids in pytest's order: by file, then by K."""

    def key(nodeid: str) -> tuple[str, int, str]:
        path, _, name = nodeid.partition("::")
        _, _, number = name.rpartition("_")
        return (path, int(number), name) if number.isdigit() else (path, -1, name)

    return [recorded[nodeid] for nodeid in sorted(recorded, key=key)]
