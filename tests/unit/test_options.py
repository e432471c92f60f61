"""The one parser of --agents, shared by the settings and by coverage's early start."""

from __future__ import annotations

import pytest

from pytest_parallel_agents.options import agents_requested, parse_agents, usable_cpus


@pytest.mark.parametrize(
    ("raw", "asked"),
    [("", False), (None, False), ("0", False), ("00", False), ("2", True), (" auto ", True)],
)
def test_agents_requested_agrees_with_the_parser(raw: str | None, asked: bool) -> None:
    assert agents_requested(raw) is asked


def test_bad_agents_counts_as_asked_so_that_the_settings_report_it() -> None:
    assert agents_requested("many") is True
    with pytest.raises(pytest.UsageError, match="--agents expects a whole number"):
        parse_agents("many")


def test_auto_is_the_usable_cpus() -> None:
    assert parse_agents("AUTO") == usable_cpus() >= 1
