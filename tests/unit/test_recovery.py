"""Unit tests for the crash policy: retry, rerun (pytest-rerunfailures) or failure."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_parallel_agents.controller.loop import _rerunfailures_reruns
from pytest_parallel_agents.controller.recovery import (
    CrashVerdict,
    PoolVerdict,
    after_agent_lost,
    after_crash,
)


def actions(crashes: int, **kwargs: Any) -> list[str]:
    """The verdict after each of ``crashes`` crashes in a row of one test."""
    return [after_crash(n, **kwargs).action for n in range(1, crashes + 1)]


# -- without reruns: the plugin's own retries, as before ------------------------------


def test_retried_silently_up_to_max_retries_then_failed() -> None:
    assert actions(3, reruns=0, max_retries=1) == ["retry", "fail", "fail"]
    assert actions(4, reruns=0, max_retries=3) == ["retry", "retry", "retry", "fail"]


def test_no_retries_fails_at_the_first_crash() -> None:
    assert after_crash(1, reruns=0, max_retries=0) == CrashVerdict("fail", True)


def test_every_crash_counts_against_the_suite_without_reruns() -> None:
    verdicts = [after_crash(n, reruns=0, max_retries=2) for n in (1, 2, 3)]
    assert all(v.counts_against_suite for v in verdicts)


# -- with reruns: as pytest-rerunfailures reruns a crashed pytest-xdist worker's test --


def test_each_crash_up_to_reruns_is_a_rerun_then_the_failure() -> None:
    assert actions(3, reruns=2, max_retries=1) == ["rerun", "rerun", "fail"]
    assert actions(2, reruns=1, max_retries=1) == ["rerun", "fail"]


@pytest.mark.parametrize("max_retries", [0, 1, 5])
def test_reruns_replace_agents_retries(max_retries: int) -> None:
    assert actions(4, reruns=3, max_retries=max_retries) == ["rerun"] * 3 + ["fail"]


def test_only_the_first_crash_of_a_rerun_test_counts_against_the_suite() -> None:
    verdicts = [after_crash(n, reruns=2, max_retries=1) for n in (1, 2, 3)]
    assert [v.counts_against_suite for v in verdicts] == [True, False, False]


@pytest.mark.parametrize("reruns", [0, 2])
def test_nothing_runs_again_once_the_run_stops(reruns: int) -> None:
    assert after_crash(1, reruns=reruns, max_retries=1, stopping=True).action == "fail"


# -- reading pytest-rerunfailures' count for an item -----------------------------------


def _config(plugin: object | None, tmp_path: Path, excluded: tuple[str, ...] = ()) -> Any:
    return SimpleNamespace(
        pluginmanager=SimpleNamespace(
            get_plugin=lambda name: plugin if name == "rerunfailures" else None
        ),
        option=SimpleNamespace(rerun_exclude_path=list(excluded) or None),
        rootpath=tmp_path,
    )


def _item(tmp_path: Path) -> Any:
    return SimpleNamespace(path=tmp_path / "tests" / "test_x.py")


@pytest.mark.parametrize(("count", "expected"), [(None, 0), (0, 0), (2, 2), (-1, 0), ("2", 0)])
def test_reruns_read_from_rerunfailures_own_function(
    tmp_path: Path, count: object, expected: int
) -> None:
    plugin = SimpleNamespace(get_reruns_count=lambda item: count)
    assert _rerunfailures_reruns(_config(plugin, tmp_path), _item(tmp_path)) == expected


def test_no_reruns_without_rerunfailures_or_its_function(tmp_path: Path) -> None:
    assert _rerunfailures_reruns(_config(None, tmp_path), _item(tmp_path)) == 0
    old = SimpleNamespace()  # a version without get_reruns_count
    assert _rerunfailures_reruns(_config(old, tmp_path), _item(tmp_path)) == 0


def test_no_reruns_under_an_excluded_path(tmp_path: Path) -> None:
    plugin = SimpleNamespace(get_reruns_count=lambda item: 3)
    item = _item(tmp_path)
    assert _rerunfailures_reruns(_config(plugin, tmp_path, ("tests",)), item) == 0
    assert _rerunfailures_reruns(_config(plugin, tmp_path, ("other",)), item) == 3


def test_a_count_that_raises_means_no_reruns(tmp_path: Path) -> None:
    def broken(item: object) -> int:
        raise TypeError("flaky() takes an int")

    plugin = SimpleNamespace(get_reruns_count=broken)
    assert _rerunfailures_reruns(_config(plugin, tmp_path), _item(tmp_path)) == 0


# --- what becomes of a pool that lost an agent (after_agent_lost) -------------------------

_HEALTHY: dict[str, Any] = {
    "work_left": True,
    "fruitless": 0,
    "others": 3,
    "degraded": False,
    "serving": True,
    "crashed": 1,
    "size": 4,
    "restarts": 0,
    "max_restarts": 10,
}


def _lost(**changes: Any) -> PoolVerdict:
    return after_agent_lost(**{**_HEALTHY, **changes})


def test_a_lost_agent_is_replaced() -> None:
    assert _lost() == PoolVerdict(False, "replace")


def test_nothing_follows_when_no_work_is_left() -> None:
    assert _lost(work_left=False, crashed=4, fruitless=5) == PoolVerdict(False, "nothing")


def test_losing_over_half_the_agents_degrades_and_replaces() -> None:
    assert _lost(crashed=2) == PoolVerdict(False, "replace")  # half is not over half
    assert _lost(crashed=3) == PoolVerdict(True, "replace")


def test_the_restart_budget_spent_degrades() -> None:
    assert _lost(restarts=10) == PoolVerdict(True, "replace")


def test_a_degraded_suite_keeps_its_one_agent_or_replaces_it() -> None:
    assert _lost(degraded=True, crashed=4) == PoolVerdict(False, "carry_on")
    assert _lost(degraded=True, serving=False, others=0) == PoolVerdict(False, "replace")


def test_agents_dying_before_any_test_stop_the_replacements() -> None:
    assert _lost(fruitless=2) == PoolVerdict(False, "replace")
    assert _lost(fruitless=3) == PoolVerdict(False, "spread")
    assert _lost(fruitless=3, others=0) == PoolVerdict(False, "give_up")


@given(
    work_left=st.booleans(),
    fruitless=st.integers(0, 6),
    others=st.integers(0, 8),
    degraded=st.booleans(),
    serving=st.booleans(),
    crashed=st.integers(0, 16),
    size=st.integers(1, 8),
    restarts=st.integers(0, 12),
    max_restarts=st.integers(0, 12),
)
def test_after_agent_lost_never_drops_work(**state: Any) -> None:
    verdict = after_agent_lost(**state)
    # Work left is run (by a replacement, the others, or the degraded agent) or reported.
    assert (verdict.then == "nothing") is (not state["work_left"])
    # A degraded suite is not degraded again; degrading always comes with a replacement
    # (the suite's agents were told to finish).
    assert not (verdict.degrade and state["degraded"])
    assert not verdict.degrade or verdict.then == "replace"
    # Giving up only when nobody is left to run it.
    assert verdict.then != "give_up" or state["others"] == 0
