"""The benchmark's paired share of capacity (benchmarks/capacity.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import capacity


def test_each_repetition_is_judged_by_its_own_probe() -> None:
    # Rep 1: plain 5 s, start-up 1 s, variant 3 s: speed-up 2.0 against a probe of 2.0.
    # Rep 2: the same runs met a busy minute: speed-up 1.0 against a probe of 1.0.
    shares = capacity.paired_shares({1: 5.0, 2: 5.0}, {1: 3.0, 2: 5.0}, [2.0, 1.0], startup=1.0)
    assert shares == [pytest.approx(1.0), pytest.approx(1.0)]


def test_repetitions_without_both_runs_or_a_probe_are_left_out() -> None:
    shares = capacity.paired_shares({1: 5.0, 3: 5.0}, {1: 3.0, 2: 3.0, 3: 3.0}, [2.0, 2.0], 1.0)
    assert shares == [pytest.approx(1.0)]  # rep 2: no plain run; rep 3: no probe


def test_a_wall_within_the_start_up_is_left_out_rather_than_divided_by() -> None:
    assert capacity.paired_shares({1: 5.0}, {1: 0.9}, [2.0], startup=1.0) == []
