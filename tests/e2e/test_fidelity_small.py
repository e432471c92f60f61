"""Smaller differences from a plain run (issue 15 §1.13), each pinned."""

from __future__ import annotations

import json

import pytest
from helpers import run, summary_counts

SUITES = """
import pytest


@pytest.mark.parametrize("n", range(8))
def test_unit(n):
    pass


@pytest.mark.performance
@pytest.mark.parametrize("n", range(4))
def test_perf(n):
    pass
"""


def test_plan_metrics_hold_the_plan(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=SUITES)
    pytester.makeini("[pytest]\nagents_suites =\n    performance: exclusive\n")
    result = run(
        pytester,
        "--agents",
        "4",
        "--agents-items",
        "2",
        "--agents-plan",
        "--agents-metrics",
        "p.json",
    )
    assert result.ret == 0
    metrics = json.loads((pytester.path / "p.json").read_text())
    assert metrics["mode"] == "plan"
    assert {
        name: (s["agents"], s["wave"], s["exclusive"]) for name, s in metrics["suites"].items()
    } == {
        "unit": (4, 1, False),
        "performance": (2, 2, True),
    }
    result.stdout.fnmatch_lines(["x: an exclusive suite, which runs while nothing else runs"])


def test_the_plan_alone_uses_the_last_runs_durations(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=SUITES)
    run(pytester, "--agents", "2").assert_outcomes(passed=12)
    plan = run(pytester, "--agents-plan")
    plan.stdout.fnmatch_lines(["predicted seconds: the last run's durations, from pytest's cache"])


def test_an_in_process_run_sets_the_agent_variables(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_env="""
        import os

        def test_env(agent_id):
            assert agent_id == "controller"
            assert os.environ["PYTEST_AGENT_ID"] == "controller"
            assert os.environ["PYTEST_AGENTS_RUN_ID"]
        """
    )
    result = run(pytester, "--agents", "1")
    assert summary_counts(result) == {"passed": 1}
    result.stdout.fnmatch_lines(["parallel agents: running in-process: *"])


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_plugins_named_with_p_reach_the_agents(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(
        plug_a="def pytest_report_header(): return 'plug_a here'\n",
        test_p="""
        def test_plugins(request):
            manager = request.config.pluginmanager
            assert manager.has_plugin("plug_a")
            assert not manager.has_plugin("cacheprovider")
        """,
    )
    pytester.syspathinsert()
    args = ("-p", "plug_a", "-p", "no:cacheprovider")
    assert summary_counts(run(pytester, *args)) == {"passed": 1}
    agents = ("--agents", "2", "--agents-items", "1", "--agents-min-items", "1")
    parallel = run(pytester, *args, *agents, "--agents-start", start, subprocess=start == "spawn")
    assert summary_counts(parallel) == {"passed": 1}, parallel.stdout.str()


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_pytest_exit_in_an_agent_ends_the_run_with_its_code(
    pytester: pytest.Pytester, start: str
) -> None:
    pytester.makepyfile(
        test_e="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            if n == 3:
                pytest.exit("stop here", returncode=7)
        """
    )
    plain = run(pytester, "-p", "no:cacheprovider")
    parallel = run(
        pytester,
        "-p",
        "no:cacheprovider",
        "--agents",
        "2",
        "--agents-items",
        "1",
        "--agents-start",
        start,
    )
    assert plain.ret == parallel.ret == 7
    for result in (plain, parallel):
        result.stdout.fnmatch_lines(["*_pytest.outcomes.Exit: stop here*"])
        assert "INTERNALERROR" not in result.stdout.str()
