"""The benchmark's reachable-time model (benchmarks/bounds.py): bounds that must hold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bounds

durations = st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=60)
agents = st.integers(min_value=1, max_value=16)


@given(durations, agents)
def test_no_schedule_beats_the_lower_bound_and_greedy_keeps_grahams(
    seconds: list[float], n: int
) -> None:
    bound = bounds.lower_bound(seconds, n)
    greedy = bounds.list_schedule(seconds, n)
    lpt = bounds.lpt_schedule(seconds, n)
    slack = 1e-9 * (1 + sum(seconds))
    assert greedy >= bound - slack
    assert lpt >= bound - slack
    # Graham 1966: any list schedule (LPT is one) ends by total/n + longest * (1 - 1/n).
    graham = sum(seconds) / n + max(seconds) * (1 - 1 / n) + slack
    assert greedy <= graham
    assert lpt <= graham


def test_a_late_long_test_is_what_greedy_cannot_avoid() -> None:
    seconds = [1.0] * 8 + [4.0]
    assert bounds.lower_bound(seconds, 4) == 4.0
    assert bounds.list_schedule(seconds, 4) == 6.0  # the 4 s test starts at t=2
    assert bounds.lpt_schedule(seconds, 4) == 4.0


def test_collection_order_sorts_test_numbers_as_numbers() -> None:
    recorded = {"b.py::test_0": 5.0, "a.py::test_10": 3.0, "a.py::test_2": 2.0}
    assert bounds.collection_order(recorded) == [2.0, 3.0, 5.0]


def test_zero_agents_is_an_error() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        bounds.list_schedule([1.0], 0)
