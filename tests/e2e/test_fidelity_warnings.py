"""Warnings: suites that turn them into errors, and counts equal to a plain run's."""

from __future__ import annotations

import pytest
from helpers import compare, summary_counts


def test_spawned_agents_run_under_filterwarnings_error(pytester: pytest.Pytester) -> None:
    """Issue 15 §1.3: the spawned agent imports this package before its session starts, and
    an installed plugin's package is marked for assertion rewriting: the "already imported"
    warning became an error that ended every agent. ``-p pytest_parallel_agents`` marks the
    package the way an installed (non-editable) distribution does."""
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_a="def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n",
        test_b="def test_x(): pass\ndef test_y(): pass\ndef test_z(): pass\n",
    )
    agents = ("--agents", "2", "--agents-items", "1", "--agents-start", "spawn")
    _plain, parallel = compare(pytester, "-p", "pytest_parallel_agents", agents_args=agents)
    assert summary_counts(parallel) == {"passed": 6}


WARNS = """
import warnings

import pytest


@pytest.fixture
def fx():
    warnings.warn("in setup", UserWarning)
    yield
    warnings.warn("in teardown", UserWarning)


def test_call():
    warnings.warn("in call", UserWarning)


def test_fx(fx):
    pass
"""

SIX = """
import pytest


@pytest.mark.parametrize("i", range(6))
def test_x(i):
    pass
"""


def _warnings_section(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "warnings summary" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("-- Docs:"))
    return lines[start:end]


@pytest.mark.parametrize("budget", ["2", "3", "4"])
def test_warnings_are_counted_once_whatever_the_waves(
    pytester: pytest.Pytester, budget: str
) -> None:
    """Issue 15 §1.4: with three suites on a budget of 2, forked agents of a later wave
    received, on registering, the warnings the controller had replayed from earlier ones."""
    pytester.makepyfile(test_w=WARNS)
    for suite in ("e2e", "integration"):
        pytester.mkdir(suite).joinpath(f"test_{suite}.py").write_text(SIX)
    plain, parallel = compare(
        pytester, "test_w.py", "e2e", "integration", agents_args=("--agents", budget)
    )
    assert summary_counts(parallel) == {"passed": 14, "warnings": 3}
    assert _warnings_section(parallel) == _warnings_section(plain)
