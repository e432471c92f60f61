"""Agents are real processes of their own, and none outlives the run, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import (
    BARRIER_SOURCE,
    PARALLEL,
    QUIET_PLUGINS,
    assert_parallel,
    interruptible_children,
    processes_in,
    read_logs,
    read_metrics,
    recorder_source,
    run,
    wait_until_gone,
)

from pytest_parallel_agents.transport.gateways import Transport
from pytest_parallel_agents.transport.protocol import (
    PROTOCOL_VERSION,
    AgentAlive,
    Shutdown,
    StartSession,
)

START_METHODS = pytest.mark.parametrize("start", ["fork", "spawn"])


def _project(pytester: pytest.Pytester, *, failing: bool, blocking: bool = False) -> Path:
    """Eight tests recording their pid; the controller records its own pid at configure."""
    records = pytester.path.parent / f"{pytester.path.name}-records"
    barrier = pytester.path.parent / f"{pytester.path.name}-barrier"
    pytester.makeconftest(
        recorder_source(records)
        + BARRIER_SOURCE
        + textwrap.dedent(
            f"""
            import pytest

            def pytest_configure(config):
                if os.environ.get("PYTEST_AGENT_ID") is None:
                    record("controller")

            @pytest.fixture(autouse=True)
            def _track(request):
                record("test", nodeid=request.node.nodeid)
                wait_for_agents({str(barrier)!r})
            """
        )
    )
    body = "assert n != 5" if failing else "pass"
    if blocking:
        body = textwrap.indent(
            "deadline = time.monotonic() + 60\n"
            "while time.monotonic() < deadline:\n"
            "    time.sleep(0.05)",
            "            ",
        ).strip()
    pytester.makepyfile(
        test_pids=f"""
        import time
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_n(n):
            {body}
        """
    )
    return records


def _assert_no_agent_left(pytester: pytest.Pytester, pids: set[int]) -> None:
    assert pids, "no agent pid to check"
    left = wait_until_gone(pids)
    assert left == [], f"agent processes still alive: {left}"
    deadline = time.monotonic() + 2.5
    while (strays := processes_in(pytester.path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert strays == [], f"processes still running in the project: {strays}"


def _metrics_path(pytester: pytest.Pytester) -> Path:
    return pytester.path.parent / f"{pytester.path.name}-metrics.json"


@START_METHODS
@pytest.mark.parametrize("failing", [False, True], ids=["passing", "failing"])
def test_no_agent_outlives_the_run(pytester: pytest.Pytester, start: str, failing: bool) -> None:
    records = _project(pytester, failing=failing)
    metrics_path = _metrics_path(pytester)
    result = run(
        pytester,
        *PARALLEL,
        "--agents-start",
        start,
        f"--agents-metrics={metrics_path}",
        subprocess=True,
    )
    expected = pytest.ExitCode.TESTS_FAILED if failing else pytest.ExitCode.OK
    assert result.ret == expected, result.stdout.str()
    metrics = read_metrics(metrics_path)
    assert_parallel(result, metrics)
    pids = {agent["pid"] for agent in metrics["agents"]}
    assert len(pids) == len(metrics["agents"]) == 4
    _assert_no_agent_left(pytester, pids)
    # The pids that ran tests are among those the metrics name.
    logs = read_logs(records)
    test_pids = {e["pid"] for log in logs.values() for e in log if e["kind"] == "test"}
    assert test_pids <= pids


def test_no_agent_after_a_usage_error(pytester: pytest.Pytester) -> None:
    _project(pytester, failing=False)
    metrics_path = _metrics_path(pytester)
    result = run(
        pytester,
        *PARALLEL,
        "--agents-suite",
        "nosuch",
        f"--agents-metrics={metrics_path}",
        subprocess=True,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown suite 'nosuch'" in result.stderr.str()
    pids = (
        {a["pid"] for a in read_metrics(metrics_path)["agents"]} if metrics_path.exists() else set()
    )
    assert wait_until_gone(pids) == []
    assert processes_in(pytester.path) == []


@START_METHODS
def test_agents_are_separate_processes(pytester: pytest.Pytester, start: str) -> None:
    records = _project(pytester, failing=False)
    metrics_path = _metrics_path(pytester)
    result = run(
        pytester,
        *PARALLEL,
        "--agents-start",
        start,
        f"--agents-metrics={metrics_path}",
        subprocess=True,
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    metrics = read_metrics(metrics_path)
    assert_parallel(result, metrics)
    logs = read_logs(records)
    controller = [e["pid"] for log in logs.values() for e in log if e["kind"] == "controller"]
    assert len(controller) == 1, logs.keys()
    tests = [e for log in logs.values() for e in log if e["kind"] == "test"]
    assert len(tests) == 8
    pids = {e["pid"] for e in tests}
    assert len(pids) >= 2, pids
    assert controller[0] not in pids
    assert os.getpid() not in pids
    by_agent = {a["id"]: a["pid"] for a in metrics["agents"]}
    assert controller[0] not in by_agent.values()
    for entry in tests:
        assert by_agent[entry["agent"]] == entry["pid"], entry
    _assert_no_agent_left(pytester, set(by_agent.values()))


def _two_suites(pytester: pytest.Pytester, *, slow_cap: str, exclusive: bool = False) -> Path:
    """A 3-test ``quick`` suite beside 30 tests of 50 ms (``unit``); budget 2 gives each one.

    With ``exclusive``, a one-test ``perf`` suite waits for both (it runs alone).
    """
    records = pytester.path.parent / f"{pytester.path.name}-records"
    perf = "    perf: path=test_perf.py exclusive" if exclusive else ""
    pytester.makeini(
        f"""
        [pytest]
        agents_suites =
            quick: path=test_quick.py
            unit: path=test_slow.py {slow_cap}
        {perf}
        """
    )
    if exclusive:
        pytester.makepyfile(test_perf="def test_alone():\n    pass\n")
    pytester.makeconftest(
        recorder_source(records)
        + textwrap.dedent(
            """
            import pytest

            @pytest.fixture(autouse=True)
            def _track(request):
                record("test", nodeid=request.node.nodeid)
            """
        )
    )
    pytester.makepyfile(
        test_quick="""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_q(n):
            pass
        """,
        test_slow="""
        import time
        import pytest

        @pytest.mark.parametrize("n", range(30))
        def test_s(n):
            time.sleep(0.05)
        """,
    )
    return records


@pytest.mark.parametrize(
    ("cap", "exclusive"),
    [("", False), ("max_agents=1", False), ("", True)],
    ids=["grows", "capped", "grows-while-an-exclusive-suite-waits"],
)
def test_a_finished_suites_budget_goes_to_a_suite_still_running(
    pytester: pytest.Pytester, cap: str, exclusive: bool
) -> None:
    records = _two_suites(pytester, slow_cap=cap, exclusive=exclusive)
    metrics_path = _metrics_path(pytester)
    result = run(
        pytester, "--agents=2", "-p", "no:cacheprovider", f"--agents-metrics={metrics_path}"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=34 if exclusive else 33)
    suites_line = f"parallel agents: {3 if exclusive else 2} suites on up to 2 agents (budget 2): *"
    result.stdout.fnmatch_lines([suites_line])
    metrics = read_metrics(metrics_path)
    assert metrics["lost"] == [] and metrics["duplicates"] == [], metrics
    suites = metrics["suites"]
    assert (suites["quick"]["agents"], suites["unit"]["agents"]) == (1, 1), suites
    tests = [e for log in read_logs(records).values() for e in log if e["kind"] == "test"]
    ran_by: dict[str, set[str]] = {}
    for entry in tests:
        ran_by.setdefault(entry["agent"], set()).add(entry["nodeid"].partition("::")[0])
    if exclusive:
        # Still alone: it started after every other test, on an agent of its own.
        assert ran_by.pop("perf-0") == {"test_perf.py"}, ran_by
        started = {e["nodeid"]: e["time"] for e in tests}
        assert started["test_perf.py::test_alone"] == max(started.values())
    if cap:
        # The rule caps the suite at one agent: the freed slot stays idle.
        assert suites["unit"]["agents_added"] == 0, suites
        assert ran_by == {"quick-0": {"test_quick.py"}, "unit-0": {"test_slow.py"}}
        return
    # quick ended after its 3 tests; the slot it freed went to the suite with work left, and
    # the new agent took a share of it (an agent still runs one suite only).
    assert suites["unit"]["agents_added"] == 1, suites
    assert ran_by == {
        "quick-0": {"test_quick.py"},
        "unit-0": {"test_slow.py"},
        "unit-1": {"test_slow.py"},
    }, ran_by
    per_agent = {a["id"]: a["tests"] for a in metrics["agents"]}
    assert per_agent["unit-1"] >= 5 and per_agent["unit-0"] + per_agent["unit-1"] == 30
    _assert_no_agent_left(pytester, {a["pid"] for a in metrics["agents"]})


@START_METHODS
@pytest.mark.parametrize("target", ["controller", "process-group"])
def test_ctrl_c_stops_everything(pytester: pytest.Pytester, start: str, target: str) -> None:
    """SIGINT to the controller alone, or to its whole group as a terminal's Ctrl-C does."""
    records = _project(pytester, failing=False, blocking=True)
    output = pytester.path.parent / f"{pytester.path.name}-output.txt"
    with output.open("w") as out, interruptible_children():
        process = pytester.popen(
            [
                sys.executable,
                "-m",
                "pytest",
                *QUIET_PLUGINS,
                *PARALLEL,
                "--agents-start",
                start,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            started: set[int] = set()
            while time.monotonic() < deadline and len(started) < 2:
                logs = read_logs(records) if records.exists() else {}
                started = {e["pid"] for log in logs.values() for e in log if e["kind"] == "test"}
                time.sleep(0.05)
            assert len(started) >= 2, output.read_text()
            if target == "controller":
                os.kill(process.pid, signal.SIGINT)
            else:
                os.killpg(process.pid, signal.SIGINT)
            ret = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    text = output.read_text()
    assert ret == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text, text
    assert "INTERNALERROR" not in text, text
    _assert_no_agent_left(pytester, started)


def test_a_spawned_agent_proves_it_lives_as_soon_as_it_has_its_start(tmp_path: Path) -> None:
    """Its first word is AgentAlive, before placement and pytest's start-up: a short heartbeat
    must not see a healthy agent that is still importing as silent (it used to speak only
    after its session object existed, and then after a second of quiet)."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    transport = Transport()
    try:
        (link,) = transport.start([("unit-0", "popen")])
        link.send(
            StartSession(
                protocol=PROTOCOL_VERSION,
                agent_id="unit-0",
                suite="unit",
                run_id="r",
                total_agents=1,
                args=("-p", "no:cacheprovider", str(tmp_path)),
                invocation_dir=str(tmp_path),
                sys_path=tuple(sys.path),
                basetemp=str(tmp_path / "basetemp"),
                tests=(0,),
                nodeids=("test_one.py::test_one",),
                files=(str(tmp_path / "test_one.py"),),
                forward_output=False,
                parent_pid=os.getpid(),
                status_dir=str(tmp_path),
                coverage=None,
            )
        )
        agent_id, first = transport.events.get(timeout=60)
        assert (agent_id, first) == ("unit-0", AgentAlive())
        link.send(Shutdown(drop_pending=True))
    finally:
        transport.stop_all()
