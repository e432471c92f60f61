"""Each run keeps its durations in pytest's cache; the next run sizes (and, asked to,
orders) its work by them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import QUIET_PLUGINS, ran_log, read_ran_log
from hypothesis import given
from hypothesis import strategies as st

from pytest_parallel_agents.artifacts.durations import CACHE_KEY, cache_update, from_cache

PARALLEL = ("--agents", "2", "--agents-items", "1", "--agents-min-items", "1")
LONGEST_FIRST = ("--agents-order", "longest-first")
CACHE_FILE = Path(".pytest_cache", "v", *CACHE_KEY.split("/"))

# Seven quick tests, then a slow one last: without durations the agents take a half each,
# in collection order, so the slow test runs last on its agent; with them, longest first.
# The quick ones take 0.1 s: with no work of their own to speak of, an agent that started
# well before the slow test's agent ran dry and, rightly, stole the slow test (seen once
# under load), which is not what the test is about.
PROJECT = """
import time

import pytest
from note import note


@pytest.mark.parametrize("i", range(7))
def test_quick(i):
    time.sleep(0.1)
    note(f"quick{i}")


def test_slow():
    time.sleep(0.4)
    note("slow")
"""


def _runs(log: Path) -> list[tuple[str, str]]:
    ran = read_ran_log(log)
    log.unlink()
    return ran


def _slow_position(log: Path) -> tuple[int, int]:
    """(where the slow test came in its agent's sequence, how many tests that agent ran)."""
    ran = _runs(log)
    agent = next(agent for agent, name in ran if name == "slow")
    mine = [name for a, name in ran if a == agent]
    return mine.index("slow"), len(mine)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project in place; returns the log its tests write to."""
    log = ran_log(pytester, monkeypatch)
    pytester.makepyfile(test_mix=PROJECT)
    return log


def test_the_next_run_starts_the_slow_test_first(pytester: pytest.Pytester, project: Path) -> None:
    log = project
    first = pytester.runpytest(*QUIET_PLUGINS, *PARALLEL)
    first.assert_outcomes(passed=8)
    assert _slow_position(log)[0] >= 3  # after the quick tests of its half of the collection
    cached = json.loads((pytester.path / CACHE_FILE).read_text())
    assert len(cached) == 8
    assert cached["test_mix.py::test_slow"] >= 0.4 > cached["test_mix.py::test_quick[0]"]

    # By default the cached durations never reorder: each agent keeps collection order.
    again = pytester.runpytest(*QUIET_PLUGINS, *PARALLEL)
    again.assert_outcomes(passed=8)
    position, count = _slow_position(log)
    assert position == count - 1 > 0  # still last of its agent's tests, after quick ones
    again.stdout.no_fnmatch_line("*longest first*")

    second = pytester.runpytest(*QUIET_PLUGINS, *PARALLEL, *LONGEST_FIRST)
    second.assert_outcomes(passed=8)
    assert _slow_position(log)[0] == 0
    second.stdout.fnmatch_lines(["parallel agents: *; longest first, by the last run's durations"])

    plan = pytester.runpytest(*QUIET_PLUGINS, *PARALLEL, "--agents-plan")
    plan.stdout.fnmatch_lines(["predicted seconds: the last run's durations, from pytest's cache"])


def test_a_durations_file_wins_over_the_cache(pytester: pytest.Pytester, project: Path) -> None:
    pytester.runpytest(*QUIET_PLUGINS, *PARALLEL).assert_outcomes(passed=8)
    (pytester.path / ".test_durations").write_text(json.dumps({"test_mix.py::test_slow": 0.4}))
    result = pytester.runpytest(*QUIET_PLUGINS, *PARALLEL, "--agents-plan")
    result.stdout.no_fnmatch_line("*from pytest's cache*")
    result.stdout.fnmatch_lines(["budget 2, peak 2 agents, 1 wave(s), parallel"])


# Two tests known to be long among quick ones, at four agents: LPT gives each long test an
# agent of its own, and that agent needs a second test before it may start its first.
TWO_LONG = """
import time

import pytest
from note import note


def test_long_a():
    time.sleep(1.0)
    note("long_a")


@pytest.mark.parametrize("i", range(20))
def test_quick(i):
    note(f"quick{i}")


def test_long_b():
    time.sleep(1.0)
    note("long_b")
"""


def test_two_long_tests_of_known_duration_run_side_by_side(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ran_log(pytester, monkeypatch)
    pytester.makepyfile(test_two=TWO_LONG)
    durations = {f"test_two.py::test_quick[{i}]": 0.01 for i in range(20)}
    durations |= {"test_two.py::test_long_a": 1.0, "test_two.py::test_long_b": 1.0}
    (pytester.path / "durations.json").write_text(json.dumps(durations))
    result = pytester.runpytest(
        *QUIET_PLUGINS,
        "--agents",
        "4",
        "--agents-items",
        "1",
        "--agents-min-items",
        "1",
        "--agents-durations",
        "durations.json",
        *LONGEST_FIRST,
    )
    result.assert_outcomes(passed=22)
    ran = read_ran_log(log)
    where = {name: agent for agent, name in ran}
    # The agent given one long test used to steal the other as the test to run after it.
    assert where["long_a"] != where["long_b"]
    for name in ("long_a", "long_b"):
        assert next(n for a, n in ran if a == where[name]) == name  # each agent starts with it


def test_shards_never_use_the_cache(pytester: pytest.Pytester, project: Path) -> None:
    # Each CI job has a cache of its own: a split by it would differ between jobs.
    pytester.runpytest(*QUIET_PLUGINS, *PARALLEL).assert_outcomes(passed=8)
    assert (pytester.path / CACHE_FILE).exists()
    result = pytester.runpytest(*QUIET_PLUGINS, *PARALLEL, "--agents-shard=1/2", "--agents-plan")
    result.stdout.fnmatch_lines(["*no recorded durations: shards balanced by test count"])


@pytest.mark.parametrize(
    "args",
    [("-p", "no:cacheprovider", *PARALLEL), ("--agents", "0")],
    ids=["cache-disabled", "parallel-off"],
)
def test_nothing_is_cached_without_the_cache_or_without_agents(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    project: Path,
    args: tuple[str, ...],
) -> None:
    monkeypatch.setenv("PYTEST_AGENT_ID", "-")  # read by the project when run in-process
    pytester.runpytest(*QUIET_PLUGINS, *args).assert_outcomes(passed=8)
    assert not (pytester.path / CACHE_FILE).exists()


def test_a_damaged_entry_is_dropped() -> None:
    assert from_cache([1, 2]) == {}
    assert from_cache({"a": 1, "b": "x", "c": -1.0, "d": True, "e": float("nan"), "f": 0}) == {
        "a": 1.0,
        "f": 0.0,
    }


@given(
    st.dictionaries(st.text(max_size=5), st.floats(0, 100), max_size=20),
    st.dictionaries(st.text(max_size=5), st.floats(0, 100), max_size=20),
    st.integers(min_value=0, max_value=40),
)
def test_the_cache_keeps_this_runs_figures_and_stays_bounded(
    previous: dict[str, float], measured: dict[str, float], limit: int
) -> None:
    merged = cache_update(previous, measured, limit)
    for nodeid, seconds in measured.items():
        assert merged[nodeid] == round(seconds, 6)
    if len(previous.keys() | measured.keys()) <= limit:
        assert merged.keys() == previous.keys() | measured.keys()
    else:
        assert merged.keys() == measured.keys()
