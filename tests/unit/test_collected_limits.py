"""Per-test limits the controller enforces, from markers (``collected.marker_timeouts``)."""

from __future__ import annotations

import pytest

from pytest_parallel_agents.collected import TIMEOUT_PLUGIN_MARGIN, marker_timeouts

# pytest-timeout is not installed here: its marker is only data for these tests.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")


def _marks(**marks: pytest.MarkDecorator) -> dict[str, pytest.Mark]:
    return {name: decorator.mark for name, decorator in marks.items()}


def test_agents_timeout_is_the_limit_itself() -> None:
    marks = [_marks(agents_timeout=pytest.mark.agents_timeout(3)), {}]
    assert marker_timeouts(marks) == {0: 3.0}
    assert marker_timeouts(marks, timeout_plugin=True) == {0: 3.0}


def test_a_timeout_marker_is_the_limit_without_pytest_timeout() -> None:
    marks = [{}, _marks(timeout=pytest.mark.timeout(1, method="signal"))]
    assert marker_timeouts(marks) == {1: 1.0}


def test_pytest_timeout_fails_its_test_before_the_controller_kills_it() -> None:
    """pytest-timeout enforces its own marker: the kill waits, or it races pytest-timeout's
    own failure (and its stack dump) and, on a loaded machine, wins."""
    marks = [_marks(timeout=pytest.mark.timeout(seconds=1))]
    assert marker_timeouts(marks, timeout_plugin=True) == {0: 1.0 + TIMEOUT_PLUGIN_MARGIN}


def test_agents_timeout_wins_over_timeout_and_bad_values_are_ignored() -> None:
    both = _marks(agents_timeout=pytest.mark.agents_timeout(2), timeout=pytest.mark.timeout(9))
    marks = [both, _marks(timeout=pytest.mark.timeout(0)), _marks(timeout=pytest.mark.timeout())]
    assert marker_timeouts(marks, timeout_plugin=True) == {0: 2.0}
