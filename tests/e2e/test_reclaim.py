"""Agents that ran dry get back the tests another agent holds and has not started."""

from __future__ import annotations

import json
import os
from collections import Counter, deque
from pathlib import Path

import pytest
from helpers import QUIET_PLUGINS, ran_log, read_ran_log

from pytest_parallel_agents.planning.scheduling import withdraw

PARALLEL = ("--agents", "4", "--agents-items", "1", "--agents-min-items", "1")
# Giving tests back is how --agents-order longest-first ends a suite; in collection order an
# agent may only be given back tests after the last it ran (the slow-module case).
LONGEST_FIRST = "--agents-order=longest-first"

# Quick tests first, then a slow module: nothing says it is slow (no durations), so the
# agent whose share reaches it takes a window of its tests before any of them has run.
QUICK = """
import time

import pytest
from note import note


@pytest.mark.parametrize("i", range(200))
def test_quick(i):
    time.sleep(0.002)  # the agent reaching the slow module takes it all before others run dry
    note(f"quick{i}")
"""

SLOW = """
import time

import pytest
from note import note


@pytest.mark.parametrize("i", range(24))
def test_slow(i):
    time.sleep(0.2)
    note(f"slow{i}")
"""


@pytest.fixture
def log(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    return ran_log(pytester, monkeypatch)


@pytest.mark.parametrize("order", ["collection", "longest-first"])
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_slow_module_met_without_durations_is_shared_out(
    pytester: pytest.Pytester, log: Path, start: str, order: str
) -> None:
    pytester.makepyfile(test_a_quick=QUICK, test_b_slow=SLOW)
    result = pytester.runpytest(
        *QUIET_PLUGINS,
        *PARALLEL,
        f"--agents-start={start}",
        f"--agents-order={order}",
        "--agents-metrics=m.json",
    )
    result.assert_outcomes(passed=224)
    slow_agents = Counter(agent for agent, name in read_ran_log(log) if name.startswith("slow"))
    # The agent holding the slow tests gave back those it had not started: the others, dry
    # by then, ran them. Before, it ran 13 of the 24 while three stood idle.
    assert len(slow_agents) >= 3, slow_agents
    assert max(slow_agents.values()) <= 10, slow_agents  # 6-8 here; 13 before
    metrics = json.loads((pytester.path / "m.json").read_text())
    assert metrics["lost"] == [] and metrics["duplicates"] == []


def test_a_group_comes_back_whole_or_not_at_all(pytester: pytest.Pytester, log: Path) -> None:
    pytester.makepyfile(
        test_a_quick=QUICK,
        test_b_slow=SLOW.replace(
            "@pytest.mark.parametrize",
            '@pytest.mark.agents_group("slow")\n@pytest.mark.parametrize',
        ),
        test_c_slow=SLOW.replace('note(f"slow{i}")', 'note(f"other{i}")'),
    )
    result = pytester.runpytest(*QUIET_PLUGINS, *PARALLEL, LONGEST_FIRST)
    result.assert_outcomes(passed=248)
    ran = read_ran_log(log)
    group = {agent for agent, name in ran if name.startswith("slow")}
    assert len(group) == 1, group  # a group runs on one agent, whoever holds it
    others = Counter(agent for agent, name in ran if name.startswith("other"))
    assert len(others) >= 2, others


CRASHING = """
import os
import time

import pytest


@pytest.mark.parametrize("i", range(100))
def test_quick(i):
    time.sleep(0.005)
    if i == 52:
        time.sleep(1.5)  # the other agent runs dry meanwhile and asks this one for tests
        os._exit(1)
"""


def test_an_agent_that_dies_before_it_gives_tests_back(pytester: pytest.Pytester) -> None:
    # Two agents, a half each. The second holds the rest of its half behind test 52, which
    # sleeps and then kills it; the first runs dry meanwhile and asks it for tests back. The
    # answer never comes: the waiting agent runs the dead one's tests, none is lost and no
    # process is left behind.
    pytester.makepyfile(test_crash=CRASHING)
    result = pytester.runpytest_subprocess(
        *QUIET_PLUGINS,
        "--agents=2",
        "--agents-items=1",
        "--agents-min-items=1",
        "--agents-metrics=m.json",
        LONGEST_FIRST,
        timeout=120,
    )
    result.assert_outcomes(passed=99, failed=1)
    result.stdout.fnmatch_lines(["*test_crash.py::test_quick?52?*"])
    metrics = json.loads((pytester.path / "m.json").read_text())
    assert metrics["lost"] == [] and metrics["duplicates"] == []
    for agent in metrics["agents"]:
        with pytest.raises(ProcessLookupError):
            os.kill(agent["pid"], 0)


def test_an_agent_waiting_for_tests_back_is_not_taken_for_a_silent_one(
    pytester: pytest.Pytester,
) -> None:
    # The dry agent holds a test it cannot start until tests come back, longer than the
    # heartbeat limit (the other agent's test 52 takes 3 s): waiting is not hanging.
    pytester.makepyfile(
        test_wait=CRASHING.replace("time.sleep(1.5)", "time.sleep(3.0)").replace(
            "os._exit(1)", "pass"
        )
    )
    result = pytester.runpytest(
        *QUIET_PLUGINS,
        "--agents=2",
        "--agents-items=1",
        "--agents-min-items=1",
        "--agents-heartbeat=2",
        "--agents-metrics=m.json",
        LONGEST_FIRST,
    )
    result.assert_outcomes(passed=100)
    metrics = json.loads((pytester.path / "m.json").read_text())
    assert metrics["totals"]["restarts"] == 0
    returned = metrics["totals"]["tests_returned"]
    assert returned > 0
    result.stdout.fnmatch_lines([f"2 agents, mode parallel, * s, {returned} tests given back"])


def test_the_agent_keeps_its_next_test_and_gives_back_whole_units() -> None:
    queue = deque([5, 6, 7, 8, 9, 10])
    # 5 is next (the test that ran last was torn down for it); 9 and 11 make (9, 11) a unit
    # not wholly here; 6 is asked for as part of (5, 6), which holds the head.
    back = withdraw(queue, ((5, 6), (7,), (8,), (9, 11), (10,)))
    assert back == ((7,), (8,), (10,))
    assert list(queue) == [5, 6, 9]
    assert withdraw(queue, ((9,),)) == ((9,),)
    assert withdraw(deque([1]), ((1,),)) == ()
