"""Longest processing time first: items, heaviest first, each to the least loaded bin."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["lpt"]

T = TypeVar("T")


def lpt(items: Sequence[T], weight: Callable[[T], float], count: int) -> list[list[T]]:
    """Split ``items`` into ``count`` bins: each item, heaviest first, to the bin least
    loaded so far; each bin lists its items in the order they went in.

    Items of equal weight go in the order of ``items``, and of equally loaded bins the first
    wins, so the result depends on nothing but the order of ``items``: a caller that must
    not depend on some order sorts them first. The heaviest bin is within Graham's bound:
    at most the mean load plus the heaviest item.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    weighed = sorted(((-weight(item), at) for at, item in enumerate(items)))
    bins: list[list[T]] = [[] for _ in range(count)]
    loads = [(0.0, b) for b in range(count)]  # a heap: the least loaded bin, then the first
    for negative, at in weighed:
        load, b = heapq.heappop(loads)
        bins[b].append(items[at])
        heapq.heappush(loads, (load - negative, b))
    return bins
