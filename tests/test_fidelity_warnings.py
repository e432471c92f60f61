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
