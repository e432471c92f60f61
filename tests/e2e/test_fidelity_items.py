"""What tests see inside agents: fixtures, ids, temp dirs, groups, serial tests, suites, options."""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    BARRIER_SOURCE,
    PARALLEL,
    assert_parallel,
    read_logs,
    read_metrics,
    recorder_source,
    run,
    summary_counts,
)


@pytest.fixture
def records(pytester: pytest.Pytester) -> Path:
    """A folder outside the project where its tests record what happened, per process."""
    folder = pytester.path.parent / f"{pytester.path.name}-records"
    folder.mkdir()
    return folder


@pytest.fixture
def barrier(pytester: pytest.Pytester) -> Path:
    return pytester.path.parent / f"{pytester.path.name}-barrier"


def _conftest(pytester: pytest.Pytester, records: Path, barrier: Path | None, body: str) -> None:
    """A project conftest with record() and, when `barrier` is given, wait_for_agents()."""
    source = recorder_source(records) + BARRIER_SOURCE
    source += f"\nBARRIER = {str(barrier) if barrier else None!r}\n"
    pytester.makeconftest(source + textwrap.dedent(body))


def _agent_logs(records: Path) -> dict[str, list[dict[str, Any]]]:
    logs = read_logs(records)
    assert logs, f"nothing recorded under {records}"
    return logs


def _tests_by_process(logs: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {
        name: [e["nodeid"] for e in log if e["kind"] == "test"]
        for name, log in logs.items()
        if any(e["kind"] == "test" for e in log)
    }


# Agents forked from the controller (the default here) or spawned as fresh interpreters.
BOTH_STARTS = pytest.mark.parametrize("start", ["fork", "spawn"])


def _agents(start: str) -> tuple[str, ...]:
    return (*PARALLEL, "--agents-start", start)


def _metrics_run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    path = pytester.path.parent / f"{pytester.path.name}-metrics.json"
    result = run(pytester, *args, f"--agents-metrics={path}")
    return result, read_metrics(path)


# --- fixtures and teardown order ------------------------------------------------------------

_MODULE_FIXTURES = """
import pytest

@pytest.fixture(scope="module", autouse=True)
def _module_resource(request):
    record("setup", module=request.module.__name__)
    yield
    record("teardown", module=request.module.__name__)

@pytest.fixture(autouse=True)
def _track(request, _module_resource):
    wait_for_agents(BARRIER)
    record("test", nodeid=request.node.nodeid, module=request.module.__name__)

def pytest_runtest_teardown(item, nextitem):
    record("nextitem", nodeid=item.nodeid, next=nextitem.nodeid if nextitem else None)
"""


def _module_project(pytester: pytest.Pytester, records: Path, barrier: Path) -> list[str]:
    _conftest(pytester, records, barrier, _MODULE_FIXTURES)
    nodeids = []
    for module in ("alpha", "beta", "gamma"):
        pytester.makepyfile(
            **{
                f"test_{module}": """
                import pytest

                @pytest.mark.parametrize("n", range(6))
                def test_it(n):
                    pass
                """
            }
        )
        nodeids += [f"test_{module}.py::test_it[{n}]" for n in range(6)]
    return nodeids


@BOTH_STARTS
def test_module_fixtures_and_nextitem_on_each_agent(
    pytester: pytest.Pytester, records: Path, barrier: Path, start: str
) -> None:
    nodeids = _module_project(pytester, records, barrier)
    result, metrics = _metrics_run(pytester, *_agents(start))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    runs = _tests_by_process(_agent_logs(records))
    assert not any(name.startswith("controller") for name in runs), runs
    assert len(runs) >= 2, runs
    assert Counter(n for tests in runs.values() for n in tests) == Counter(nodeids)
    for name, log in _agent_logs(records).items():
        tests = [e["nodeid"] for e in log if e["kind"] == "test"]
        hooks = [e for e in log if e["kind"] == "nextitem"]
        # nextitem is the test that really ran next on this agent, None after its last one.
        assert [e["nodeid"] for e in hooks] == tests, name
        assert [e["next"] for e in hooks] == [*tests[1:], None], name
        # A module's fixture is up exactly while that module's tests run, torn down before
        # another module's test and at the end.
        active: set[str] = set()
        for event in log:
            if event["kind"] == "setup":
                assert event["module"] not in active, (name, event)
                active.add(event["module"])
            elif event["kind"] == "teardown":
                assert event["module"] in active, (name, event)
                active.remove(event["module"])
            elif event["kind"] == "test":
                assert active == {event["module"]}, (name, event, active)
        assert not active, (name, active)


_ORDER_PROJECT = {
    "test_one": """
        def test_a():
            pass

        def test_b():
            pass

        def test_c():
            pass
        """,
    "test_two": """
        def test_d():
            pass

        def test_e():
            pass

        def test_f():
            pass
        """,
}


def test_module_fixture_set_up_once_per_agent(pytester: pytest.Pytester, records: Path) -> None:
    _conftest(
        pytester,
        records,
        None,
        """
        import pytest

        @pytest.fixture(scope="module", autouse=True)
        def _module_resource(request):
            record("setup", module=request.module.__name__)
            yield

        @pytest.fixture(autouse=True)
        def _track(request, _module_resource):
            record("test", nodeid=request.node.nodeid, module=request.module.__name__)
        """,
    )
    pytester.makepyfile(**_ORDER_PROJECT)
    collection = [f"test_one.py::test_{n}" for n in "abc"] + [
        f"test_two.py::test_{n}" for n in "def"
    ]
    # Two agents, one module each to start with: whatever the timing, an agent that runs dry
    # steals into the other module (new to it) and never has to go back into one it left.
    # (With more agents than modules, a dry agent may re-enter a module as a last resort
    # rather than idle beside pending work: planning/scheduling.py, tested in test_scheduling.py.)
    result, metrics = _metrics_run(
        pytester, "--agents", "2", "--agents-items", "1", "--agents-min-items", "1"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    logs = _agent_logs(records)
    runs = _tests_by_process(logs)
    assert Counter(n for tests in runs.values() for n in tests) == Counter(collection)
    # Each module's fixture is set up at most once per agent.
    setups = Counter(
        (name, e["module"]) for name, log in logs.items() for e in log if e["kind"] == "setup"
    )
    assert all(count == 1 for count in setups.values()), (setups, runs)


# --- identity of agents ---------------------------------------------------------------------

_ENV_NAMES = (
    "PYTEST_AGENT_ID",
    "PYTEST_AGENT_SUITE",
    "PYTEST_AGENTS_TOTAL",
    "PYTEST_AGENTS_RUN_ID",
)


def _identity_project(pytester: pytest.Pytester, records: Path, barrier: Path | None) -> None:
    _conftest(
        pytester,
        records,
        barrier,
        f"""
        import os
        import pytest

        @pytest.fixture(autouse=True)
        def _track(request, agent_id, tmp_path):
            wait_for_agents(BARRIER)
            record(
                "test",
                nodeid=request.node.nodeid,
                agent_id=agent_id,
                env={{name: os.environ.get(name) for name in {_ENV_NAMES!r}}},
                tmp_path=str(tmp_path),
                tmp_path_was_empty=not any(tmp_path.iterdir()),
            )
            (tmp_path / "mine.txt").write_text(request.node.nodeid)
        """,
    )
    pytester.makepyfile(
        test_unit="""
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_unit(n):
            pass
        """,
        test_integration="""
        import pytest

        pytestmark = pytest.mark.integration

        @pytest.mark.parametrize("n", range(3))
        def test_integration(n):
            pass
        """,
    )


@BOTH_STARTS
def test_terminal_writer_is_there_for_assertion_messages(
    pytester: pytest.Pytester, start: str
) -> None:
    """The agent's reporter is quiet, not gone: pytest 8 colours assertion comparisons with
    config.get_terminal_writer(), and plugins may ask for it too."""
    pytester.makepyfile(
        test_w="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_compare(n, pytestconfig):
            assert pytestconfig.get_terminal_writer() is not None
            assert [n, "x"] != [1, "x"]
        """
    )
    result = run(pytester, *PARALLEL, f"--agents-start={start}", "-p", "no:cacheprovider")
    assert_parallel(result)
    result.assert_outcomes(passed=3, failed=1)
    failed = [line for line in result.outlines if line.startswith("FAILED test_w.py")]
    # The comparison is explained (not a bare "AssertionError" from a failing explanation).
    assert failed and failed[0].endswith("assert [1, 'x'] != [1, 'x']"), result.stdout.str()


@BOTH_STARTS
def test_agent_id_fixture_and_environment(
    pytester: pytest.Pytester, records: Path, barrier: Path, start: str
) -> None:
    _identity_project(pytester, records, barrier)
    result, metrics = _metrics_run(pytester, *_agents(start))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    agents = {a["id"]: a for a in metrics["agents"]}
    entries = [e for log in _agent_logs(records).values() for e in log if e["kind"] == "test"]
    assert len(entries) == 11
    for entry in entries:
        suite = "integration" if "integration" in entry["nodeid"] else "unit"
        env = entry["env"]
        assert re.fullmatch(rf"{suite}-\d+", entry["agent_id"]), entry
        assert env["PYTEST_AGENT_ID"] == entry["agent_id"] == entry["agent"]
        assert env["PYTEST_AGENT_SUITE"] == suite
        assert env["PYTEST_AGENTS_TOTAL"] == "4"
        assert env["PYTEST_AGENTS_RUN_ID"] == metrics["run_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", metrics["run_id"])
        assert agents[entry["agent_id"]]["pid"] == entry["pid"] != os.getpid()
    # Each suite ran on agents of its own.
    assert {e["agent_id"].rpartition("-")[0] for e in entries} == {"unit", "integration"}
    # Nothing of an agent leaks into the controller's (this process's) environment.
    assert not any(name in os.environ for name in _ENV_NAMES)


def test_agent_id_outside_agents_is_controller(pytester: pytest.Pytester, records: Path) -> None:
    _identity_project(pytester, records, None)
    # A plain run sets no variable; a run whose plan needs one agent at a time (two suites,
    # budget 1) runs in-process and says so, as the agent_id fixture does.
    for args, env in (((), {}), (("--agents", "1"), {"PYTEST_AGENT_ID": "controller"})):
        for path in records.iterdir() if records.exists() else ():
            path.unlink()  # each run's records alone
        result = run(pytester, *args)
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        entries = [e for log in _agent_logs(records).values() for e in log if e["kind"] == "test"]
        assert len(entries) == 11
        for entry in entries:
            assert entry["agent_id"] == "controller", entry
            assert entry["pid"] == os.getpid()
            seen = dict(entry["env"])
            if args:
                assert seen["PYTEST_AGENTS_RUN_ID"]  # this run's id
                seen["PYTEST_AGENTS_RUN_ID"] = None
            assert seen == dict.fromkeys(_ENV_NAMES) | env, entry


@BOTH_STARTS
def test_tmp_path_bases_differ_per_agent(
    pytester: pytest.Pytester, records: Path, barrier: Path, start: str
) -> None:
    _identity_project(pytester, records, barrier)
    result, metrics = _metrics_run(pytester, *_agents(start))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    entries = [e for log in _agent_logs(records).values() for e in log if e["kind"] == "test"]
    paths = [Path(e["tmp_path"]) for e in entries]
    assert len(set(paths)) == len(paths) == 11, paths
    assert all(e["tmp_path_was_empty"] for e in entries)
    bases: dict[str, set[Path]] = {}
    for entry, path in zip(entries, paths, strict=True):
        bases.setdefault(entry["agent_id"], set()).add(path.parent)
        assert (path / "mine.txt").read_text() == entry["nodeid"]
    assert len(bases) >= 2, bases
    agents = list(bases)
    for i, first in enumerate(agents):
        for second in agents[i + 1 :]:
            assert not bases[first] & bases[second], (first, second, bases)
            for one in bases[first]:
                for other in bases[second]:
                    assert not one.is_relative_to(other) and not other.is_relative_to(one)


# --- groups and serial tests ----------------------------------------------------------------


@BOTH_STARTS
def test_groups_stay_on_one_agent_in_order(
    pytester: pytest.Pytester, records: Path, barrier: Path, start: str
) -> None:
    _conftest(
        pytester,
        records,
        barrier,
        """
        import pytest

        @pytest.fixture(autouse=True)
        def _track(request):
            wait_for_agents(BARRIER)
            record("test", nodeid=request.node.nodeid)
        """,
    )
    pytester.makepyfile(
        test_grouped="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_free(n):
            pass

        @pytest.mark.agents_group("g")
        @pytest.mark.parametrize("n", range(5))
        def test_g_first(n):
            pass

        @pytest.mark.xdist_group("x")
        @pytest.mark.parametrize("n", range(5))
        def test_x(n):
            pass

        @pytest.mark.agents_group(name="g")
        @pytest.mark.parametrize("n", range(3))
        def test_g_second(n):
            pass

        @pytest.mark.parametrize("n", range(6))
        def test_more_free(n):
            pass
        """
    )
    result, metrics = _metrics_run(pytester, *_agents(start))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    assert summary_counts(result) == {"passed": 25}
    runs = _tests_by_process(_agent_logs(records))
    group_g = [f"test_grouped.py::test_g_first[{n}]" for n in range(5)] + [
        f"test_grouped.py::test_g_second[{n}]" for n in range(3)
    ]
    group_x = [f"test_grouped.py::test_x[{n}]" for n in range(5)]
    for group in (group_g, group_x):
        holders = [name for name, tests in runs.items() if set(group) & set(tests)]
        assert len(holders) == 1, (group, runs)
        ran = [t for t in runs[holders[0]] if t in group]
        assert ran == group, ran
    assert len(runs) >= 2, runs


def test_serial_test_runs_alone_in_the_controller(
    pytester: pytest.Pytester, records: Path, barrier: Path
) -> None:
    _conftest(
        pytester,
        records,
        barrier,
        """
        import json
        import re
        import pytest

        def _live_agent_pids():
            pids = set()
            for path in RECORDS.glob("unit-*.jsonl"):
                for line in path.read_text().splitlines():
                    pids.add(json.loads(line)["pid"])
            alive = []
            for pid in pids:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except FileNotFoundError:
                    continue
                if not re.search(r"^State:\\s+Z", status, re.MULTILINE):
                    alive.append(pid)
            return sorted(pids), alive

        @pytest.fixture(autouse=True)
        def _track(request):
            if request.node.get_closest_marker("agents_serial"):
                # Every other test has ended, and no agent process is alive any more.
                pids, alive = _live_agent_pids()
                record("agents-alive", pids=pids, alive=alive)
            else:
                wait_for_agents(BARRIER)
            record("start", nodeid=request.node.nodeid)
            yield
            record("end", nodeid=request.node.nodeid)
        """,
    )
    pytester.makepyfile(
        test_serial="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_before(n):
            pass

        @pytest.mark.agents_serial
        def test_alone():
            pass

        @pytest.mark.parametrize("n", range(6))
        def test_after(n):
            pass
        """
    )
    result, metrics = _metrics_run(pytester, *PARALLEL)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    assert summary_counts(result) == {"passed": 13}
    logs = _agent_logs(records)
    events = [e for log in logs.values() for e in log]
    serial = [e for e in events if e.get("nodeid", "").endswith("::test_alone")]
    assert {e["kind"] for e in serial} == {"start", "end"}
    start = next(e["time"] for e in serial if e["kind"] == "start")
    end = next(e["time"] for e in serial if e["kind"] == "end")
    assert all(e["pid"] == os.getpid() and e["agent"] == "controller" for e in serial)
    others = [e for e in events if "nodeid" in e and not e["nodeid"].endswith("::test_alone")]
    assert len(others) == 24
    assert all(e["pid"] != os.getpid() for e in others)
    # No other test overlaps the serial one: all of them ended before it started.
    assert max(e["time"] for e in others) <= start <= end
    check = next(e for e in events if e["kind"] == "agents-alive")
    assert len(check["pids"]) >= 2 and check["alive"] == [], check


# --- suites, plan, in-process ---------------------------------------------------------------


def _suites_project(pytester: pytest.Pytester, records: Path) -> None:
    _conftest(
        pytester,
        records,
        None,
        """
        import pytest

        @pytest.fixture(autouse=True)
        def _track(request):
            record("test", nodeid=request.node.nodeid)
        """,
    )
    body = """
        import pytest

        @pytest.mark.parametrize("n", range({count}))
        def test_it(n):
            pass
        """
    for folder, count in (("unit", 4), ("integration", 3)):
        pytester.mkdir(folder)
        (pytester.path / folder / f"test_{folder}_dir.py").write_text(
            textwrap.dedent(body.format(count=count))
        )
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.integration
        @pytest.mark.parametrize("n", range(2))
        def test_marked_integration(n):
            pass

        @pytest.mark.e2e
        def test_marked_e2e():
            pass

        @pytest.mark.agents_suite("integration")
        def test_explicit_suite():
            pass

        def test_plain_unit():
            pass
        """
    )


def test_agents_suite_runs_only_that_suite(pytester: pytest.Pytester, records: Path) -> None:
    _suites_project(pytester, records)
    result, metrics = _metrics_run(pytester, *PARALLEL, "--agents-suite", "integration")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    assert summary_counts(result) == {"passed": 6, "deselected": 6}
    ran = {e["nodeid"] for log in _agent_logs(records).values() for e in log}
    assert ran == {
        *(f"integration/test_integration_dir.py::test_it[{n}]" for n in range(3)),
        "test_marked.py::test_marked_integration[0]",
        "test_marked.py::test_marked_integration[1]",
        "test_marked.py::test_explicit_suite",
    }
    assert {a["suite"] for a in metrics["agents"]} == {"integration"}


_PLAN_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+x?)$")


@pytest.mark.parametrize(("tests", "budget", "agents"), [(15, 5, 3), (28, 8, 6)])
def test_plan_prints_the_worked_examples_and_runs_nothing(
    pytester: pytest.Pytester, records: Path, tests: int, budget: int, agents: int
) -> None:
    _conftest(pytester, records, None, "")
    pytester.makepyfile(
        test_many=f"""
        import pytest

        @pytest.mark.parametrize("n", range({tests}))
        def test_it(n):
            record("test", n=n)
        """
    )
    result, metrics = _metrics_run(pytester, "--agents", str(budget), "--agents-plan")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    rows = [m.groups() for line in result.outlines if (m := _PLAN_ROW.match(line.strip()))]
    assert rows == [("unit", str(tests), "-", str(agents), "1")], result.stdout.str()
    result.stdout.fnmatch_lines([f"budget {budget}, peak {agents} agents, 1 wave(s), parallel*"])
    assert not list(records.iterdir()), "a test function ran during --agents-plan"
    assert metrics["agents"] == []
    assert "passed" not in summary_counts(result)


def test_single_agent_plan_runs_in_process(pytester: pytest.Pytester, records: Path) -> None:
    _conftest(
        pytester,
        records,
        None,
        """
        import pytest

        @pytest.fixture(autouse=True)
        def _track(request, agent_id):
            record("test", nodeid=request.node.nodeid, agent_id=agent_id)
        """,
    )
    pytester.makepyfile(
        test_two="""
        def test_one():
            pass

        def test_two():
            assert False
        """
    )
    result, metrics = _metrics_run(pytester, "--agents", "4")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert summary_counts(result) == {"passed": 1, "failed": 1}
    result.stdout.fnmatch_lines(["parallel agents: running in-process: *"])
    assert metrics["mode"] == "in-process"
    assert metrics["agents"] == []
    entries = [e for log in _agent_logs(records).values() for e in log]
    assert [(e["agent_id"], e["pid"]) for e in entries] == [("controller", os.getpid())] * 2


def test_strict_markers_accept_the_plugins_markers(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        agents_suites =
            smoke: marker=smoke_check
        """
    )
    pytester.makepyfile(
        test_markers="""
        import pytest

        @pytest.mark.integration
        def test_integration():
            pass

        @pytest.mark.e2e
        def test_e2e():
            pass

        @pytest.mark.performance
        def test_performance():
            pass

        @pytest.mark.security
        def test_security():
            pass

        @pytest.mark.unit
        def test_unit():
            pass

        @pytest.mark.smoke_check
        def test_rule_marker():
            pass

        @pytest.mark.agents_suite("custom")
        @pytest.mark.agents_group("g")
        @pytest.mark.xdist_group("x")
        def test_plugin_markers():
            pass

        @pytest.mark.agents_serial
        def test_serial():
            pass
        """
    )
    plain = run(pytester, "--strict-markers")
    assert plain.ret == pytest.ExitCode.OK, plain.stdout.str()
    parallel, metrics = _metrics_run(pytester, "--strict-markers", *PARALLEL)
    assert parallel.ret == pytest.ExitCode.OK, parallel.stdout.str()
    assert summary_counts(parallel) == summary_counts(plain) == {"passed": 8}
    assert {a["suite"] for a in metrics["agents"]} >= {"integration", "unit"}
    # --strict-markers is really on: an unknown marker is still refused.
    pytester.makepyfile(
        test_unknown="import pytest\n\n@pytest.mark.nosuchmarker\ndef test_x(): pass\n"
    )
    refused = run(pytester, "--strict-markers", *PARALLEL)
    assert refused.ret == pytest.ExitCode.INTERRUPTED
    refused.stdout.fnmatch_lines(["*'nosuchmarker' not found in `markers` configuration option*"])


# --- metrics and durations ------------------------------------------------------------------


def test_metrics_document(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mixed="""
        import time
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_pass(n):
            time.sleep(0.02)

        def test_fail():
            assert False

        @pytest.mark.skip(reason="no")
        def test_skip():
            pass
        """
    )
    result, metrics = _metrics_run(pytester, *PARALLEL)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_parallel(result, metrics)
    assert metrics["schema"] == 2
    assert metrics["mode"] == "parallel"
    assert metrics["budget"] == 4
    assert metrics["suites"]["unit"]["tests"] == 8
    assert metrics["suites"]["unit"]["agents"] == len(metrics["agents"]) == 4
    pids = set()
    for agent in metrics["agents"]:
        assert re.fullmatch(r"unit-\d+", agent["id"]) and agent["suite"] == "unit"
        assert isinstance(agent["pid"], int) and agent["pid"] != os.getpid()
        pids.add(agent["pid"])
        assert isinstance(agent["spawn_seconds"], float) and agent["spawn_seconds"] > 0
        # Schema 2: each agent's life within the session's seconds.
        started, ended = agent["started_seconds"], agent["ended_seconds"]
        assert 0 < started < started + agent["spawn_seconds"] <= ended
        assert ended <= metrics["totals"]["wall_seconds"]
        assert isinstance(agent["tests"], int) and agent["tests"] >= 0
        assert isinstance(agent["busy_seconds"], float) and agent["busy_seconds"] >= 0
        assert agent["utilization"] is None or 0 <= agent["utilization"] <= 1
        assert isinstance(agent["peak_rss_mb"], float) and agent["peak_rss_mb"] > 0
    assert len(pids) == 4
    assert sum(a["tests"] for a in metrics["agents"]) == 8
    assert sum(a["busy_seconds"] for a in metrics["agents"]) >= 6 * 0.02
    totals = metrics["totals"]
    assert totals["tests"] == 8
    assert (totals["passed"], totals["failed"], totals["skipped"]) == (6, 1, 1)
    for phase in (
        "collect_seconds",
        "distribution_seconds",
        "execution_seconds",
        "aggregation_seconds",
        "wall_seconds",
    ):
        assert isinstance(totals[phase], float) and totals[phase] >= 0, (phase, totals)
    assert totals["execution_seconds"] <= totals["wall_seconds"]
    assert metrics["lost"] == [] and metrics["duplicates"] == []


def test_store_durations_writes_pytest_split_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_timed="""
        import time
        import pytest

        def test_slow():
            time.sleep(0.2)

        @pytest.mark.parametrize("n", range(5))
        def test_fast(n):
            pass
        """
    )
    durations = pytester.path / ".test_durations"
    durations.write_text(json.dumps({"elsewhere.py::test_kept": 1.5}))
    result, metrics = _metrics_run(pytester, *PARALLEL, "--agents-store-durations")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert_parallel(result, metrics)
    stored = json.loads(durations.read_text())
    expected = {"test_timed.py::test_slow"} | {f"test_timed.py::test_fast[{n}]" for n in range(5)}
    assert set(stored) == expected | {"elsewhere.py::test_kept"}
    assert stored["elsewhere.py::test_kept"] == 1.5
    assert all(isinstance(v, float) and v >= 0 for v in stored.values())
    assert stored["test_timed.py::test_slow"] >= 0.2
    # The plan now predicts from the recorded durations.
    plan = run(pytester, "--agents", "4", "--agents-plan")
    rows = [m.groups() for line in plan.outlines if (m := _PLAN_ROW.match(line.strip()))]
    assert len(rows) == 1 and float(rows[0][2]) >= 0.2, plan.stdout.str()


# --- bad input --------------------------------------------------------------------------------


def _usage_error(result: pytest.RunResult) -> str:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    lines = result.outlines + result.errlines
    errors = [line for line in lines if line.startswith("ERROR:")]
    assert len(errors) == 1, lines
    assert not any("Traceback" in line for line in lines), lines
    return errors[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--agents", "-1"), "--agents expects a whole number*'-1'"),
        (("--agents", "lots"), "--agents expects a whole number*'lots'"),
        (("--agents", "2", "--agents-items", "0"), "--agents-items expects a whole number*'0'"),
        (("--agents", "2", "--agents-suite", "nosuch"), "*unknown suite 'nosuch'*"),
        (("--agents", "2", "--agents-metrics", "/dev/null/m.json"), "*/dev/null is not a dir*"),
        (("--agents", "2", "--agents-heartbeat", "1.5"), "*--agents-heartbeat*at least 2 *'1.5'"),
    ],
    ids=["negative", "word", "items-zero", "unknown-suite", "metrics-dir", "heartbeat-too-short"],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], expected: str
) -> None:
    pytester.makepyfile(test_ok="def test_ok(): pass\n")
    line = _usage_error(run(pytester, *args))
    assert re.fullmatch(
        "ERROR: " + ".*".join(re.escape(part) for part in expected.split("*")), line
    ), line


def test_bad_suite_rule_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        agents_suites =
            fast: marker=quick
            slow: bogus=1
        """
    )
    pytester.makepyfile(test_ok="def test_ok(): pass\n")
    line = _usage_error(run(pytester, "--agents", "2"))
    assert "agents_suites" in line and "slow: bogus=1" in line, line


def test_corrupt_durations_file_is_a_usage_error_and_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok(): pass\n")
    durations = pytester.path / "timings.json"
    corrupt = '{"test_ok.py::test_ok": 0.1,'
    durations.write_text(corrupt)
    for extra in ((), ("--agents-store-durations",)):
        line = _usage_error(
            run(pytester, "--agents", "2", f"--agents-durations={durations}", *extra)
        )
        assert str(durations) in line, line
        assert durations.read_text() == corrupt
