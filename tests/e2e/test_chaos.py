"""Misbehaving tests: crashes, hangs, memory, interrupts; each reported once, nothing left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import QUIET_PLUGINS, interruptible_children, junit_cases

CHAOS = """
import ctypes
import os
import resource
import signal
import time

import pytest


@pytest.mark.parametrize("i", range(40))
def test_ordinary(i):
    assert i >= 0


def test_exit():
    os._exit(3)


def test_sigkill():
    os.kill(os.getpid(), signal.SIGKILL)


def test_segfault():
    ctypes.string_at(0)


def test_hang():
    time.sleep(120)


def test_memory():
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, hard))
    try:
        block = bytearray(4 * 1024**3)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert block


@pytest.fixture
def dies_in_setup():
    os._exit(4)


@pytest.fixture
def dies_in_teardown():
    yield
    os._exit(5)


def test_setup_kills(dies_in_setup):
    pass


def test_teardown_kills(dies_in_teardown):
    pass
"""

BAD = {
    "test_exit": "exited with status 3",
    "test_sigkill": "killed by signal SIGKILL",
    "test_segfault": "killed by signal SIGSEGV",
    "test_hang": "timeout: still running after 2 s",
    "test_memory": "MemoryError",
    "test_setup_kills": "exited with status 4",
    "test_teardown_kills": "exited with status 5",
}


def _alive(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 3
    while True:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return False


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_chaos_suite(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(test_chaos=CHAOS)
    result = pytester.runpytest_subprocess(
        *QUIET_PLUGINS,
        "--agents=3",
        "--agents-items=1",
        f"--agents-start={start}",
        "--agents-timeout=2",
        "--junitxml=chaos.xml",
        "--agents-metrics=metrics.json",
        "-rf",
        timeout=240,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = junit_cases(pytester.path / "chaos.xml")
    names = [name for (_, name, _) in cases.elements()]
    # Every test exactly once: 40 ordinary + 7 bad.
    assert len(names) == 47 and len(set(names)) == 47, cases
    assert all(
        outcome == "passed" for (_, name, outcome) in cases if name.startswith("test_ordinary")
    )
    failed = {name for (_, name, outcome) in cases if outcome != "passed"}
    assert failed == set(BAD)
    output = result.stdout.str()
    for name, cause in BAD.items():
        # pytest 9 appends the failure's first line to the -r line; pytest 8 does not.
        line = next(
            x
            for x in result.outlines
            if x == f"FAILED test_chaos.py::{name}"
            or x.startswith(f"FAILED test_chaos.py::{name} ")
        )
        section = output.split(f"_ {name} _", 1)[1].split("\n_", 1)[0]
        assert cause in section, (name, line)
    # Crashes are retried once on a fresh agent, never more; timeouts and failures never.
    # Counted in the failure sections only: the -r summary repeats it, truncated or not (CI).
    crashed = [x for x in result.outlines if x.startswith("this test killed the agent running")]
    assert sum("(2 attempts" in x for x in crashed) == 5, crashed
    metrics = json.loads((pytester.path / "metrics.json").read_text())
    assert metrics["totals"]["retries"] == 5
    assert metrics["lost"] == [] and metrics["duplicates"] == []
    assert _alive([agent["pid"] for agent in metrics["agents"]]) == []


def test_suite_whose_every_test_kills_its_agent_degrades(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_doom="""
        import os, pytest

        @pytest.mark.parametrize("i", range(9))
        def test_doom(i):
            os._exit(1)
        """
    )
    result = pytester.runpytest(
        *QUIET_PLUGINS, "--agents=3", "--agents-items=1", "--agents-metrics=m.json"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=9)
    result.stdout.fnmatch_lines(["*DEGRADED: suite unit ran its remaining tests on one agent*"])
    metrics = json.loads((pytester.path / "m.json").read_text())
    assert metrics["mode"] == "degraded"
    assert metrics["totals"]["retries"] == 9


def test_retries_setting_zero_reports_at_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_once="""
        import os
        def test_a(): pass
        def test_b(): os._exit(1)
        def test_c(): pass
        def test_d(): pass
        """
    )
    result = pytester.runpytest(
        *QUIET_PLUGINS, "--agents=2", "--agents-items=1", "--agents-retries=0"
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*this test killed the agent running it (1 attempt, never*"])


def test_retried_test_that_passes_is_shown(pytester: pytest.Pytester) -> None:
    marker = pytester.path / "died-once"
    pytester.makepyfile(
        test_flaky=f"""
        import os
        from pathlib import Path

        def test_flaky():
            flag = Path({str(marker)!r})
            if not flag.exists():
                flag.touch()
                os._exit(9)

        def test_b(): pass
        def test_c(): pass
        """
    )
    result = pytester.runpytest(*QUIET_PLUGINS, "--agents=2", "--agents-items=1")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*retried on a fresh agent after killing one: 1*test_flaky*"])


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_early_crash_requeues_each_pending_test_once(pytester: pytest.Pytester, start: str) -> None:
    """The dead agent's unsent tests go back to the queue once, not twice (a regression)."""
    marker = pytester.path / "died-once"
    dies = (
        "import os\nfrom pathlib import Path\n\n\ndef test_dies_first():\n"
        f"    flag = Path({str(marker)!r})\n"
        "    if not flag.exists():\n        flag.touch()\n        os._exit(9)\n"
    )
    pytester.makepyfile(
        test_many=dies + "".join(f"\n\ndef test_{n}():\n    pass\n" for n in range(30))
    )
    metrics = pytester.path / "metrics.json"
    result = pytester.runpytest(
        *QUIET_PLUGINS,
        "--agents=2",
        "--agents-items=1",
        f"--agents-start={start}",
        f"--agents-metrics={metrics}",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=31)
    document = json.loads(metrics.read_text())
    assert document["duplicates"] == [] and document["lost"] == [], document
    assert sum(agent["tests"] for agent in document["agents"]) == 31, document["agents"]


def test_last_test_runs_while_a_retry_waits_for_a_fresh_agent(pytester: pytest.Pytester) -> None:
    """An agent left holding its last test is told to finish although a retry is pending.

    The retry may only run on an agent started after the crash, so the surviving agent can
    never be given it: waiting for more work held its last test back until the heartbeat
    killed it (a regression; CI hung on it). The replacement starts slowly here, so the
    survivor always runs dry first.
    """
    marker = pytester.path / "died-once"
    pytester.makeconftest(
        """
        import os, time

        def pytest_configure(config):
            if os.environ.get("PYTEST_AGENT_ID") == "unit-2":
                time.sleep(3)
        """
    )
    pytester.makepyfile(
        test_many=(
            "import os\nfrom pathlib import Path\n\n\ndef test_dies_first():\n"
            f"    flag = Path({str(marker)!r})\n"
            "    if not flag.exists():\n        flag.touch()\n        os._exit(9)\n"
        )
        + "".join(f"\n\ndef test_{n}():\n    pass\n" for n in range(10))
    )
    metrics = pytester.path / "metrics.json"
    result = pytester.runpytest_subprocess(
        *QUIET_PLUGINS,
        "--agents=2",
        "--agents-items=1",
        "--agents-start=spawn",
        "--agents-heartbeat=600",
        f"--agents-metrics={metrics}",
        "-p",
        "no:cacheprovider",
        timeout=120,
    )
    result.assert_outcomes(passed=11)
    agents = {agent["id"]: agent for agent in json.loads(metrics.read_text())["agents"]}
    assert sorted(agents) == ["unit-0", "unit-1", "unit-2"], agents
    # One of the first two died (whichever ran test_dies_first); nobody was killed for idling.
    crashed = [a for a in agents if agents[a]["crashed"]]
    assert len(crashed) == 1 and crashed[0] != "unit-2", agents
    assert agents["unit-2"]["tests"] >= 1, agents  # the retry
    assert sum(agent["tests"] for agent in agents.values()) == 11, agents


def test_maxfail_stops_every_agent_at_the_next_boundary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="""
        import time, pytest

        @pytest.mark.parametrize("i", range(60))
        def test_many(i):
            time.sleep(0.05)
            assert i != 2
        """
    )
    result = pytester.runpytest(*QUIET_PLUGINS, "-x", "--agents=3", "--agents-items=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    # Only tests already running or queued on an agent when the failure arrived may finish.
    assert outcomes.get("passed", 0) < 30


def test_heartbeat_kills_an_agent_stuck_outside_tests(pytester: pytest.Pytester) -> None:
    """An agent deadlocked after its last test (in a session hook) is found and killed."""
    pytester.makeconftest(
        """
        import os, threading

        def pytest_sessionfinish(session):
            if os.environ.get("PYTEST_AGENT_ID") == "unit-0":
                lock = threading.Lock()
                lock.acquire()
                lock.acquire()  # deadlock, with the GIL released: heartbeats go on
        """
    )
    pytester.makepyfile(
        test_hb="""
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_a(i):
            pass
        """
    )
    start = time.monotonic()
    result = pytester.runpytest(
        *QUIET_PLUGINS,
        "--agents=2",
        "--agents-items=1",
        "--agents-start=spawn",
        "--agents-heartbeat=2.5",
        "--agents-metrics=m.json",
    )
    assert time.monotonic() - start < 60
    result.assert_outcomes(passed=6)
    metrics = json.loads((pytester.path / "m.json").read_text())
    stuck = next(a for a in metrics["agents"] if a["id"] == "unit-0")
    assert stuck["crashed"] and "stopped answering" in stuck["exit"]


def test_agent_silent_before_it_is_ready_is_replaced(pytester: pytest.Pytester) -> None:
    """An agent that never becomes ready (stopped, or never sent its StartSession whole) is
    killed once silent for the heartbeat while the others run its share (a regression: the
    run waited for it forever)."""
    pytester.makeconftest(
        """
        import os, signal

        def pytest_configure(config):
            if os.environ.get("PYTEST_AGENT_ID") == "unit-1":
                os.kill(os.getpid(), signal.SIGSTOP)  # silent from now on, threads and all
        """
    )
    pytester.makepyfile(
        test_ready="""
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_a(i):
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        *QUIET_PLUGINS,
        "--agents=2",
        "--agents-items=1",
        "--agents-start=spawn",
        "--agents-heartbeat=3",
        "--agents-metrics=m.json",
        timeout=120,
    )
    result.assert_outcomes(passed=6)
    agents = {a["id"]: a for a in json.loads((pytester.path / "m.json").read_text())["agents"]}
    silent = agents["unit-1"]
    assert silent["crashed"] and "stopped answering" in silent["exit"], silent
    assert silent["tests"] == 0 and agents["unit-0"]["tests"] == 6, agents


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_writes_reports_and_leaves_nothing(
    pytester: pytest.Pytester, signum: signal.Signals
) -> None:
    pytester.makepyfile(
        test_slow="""
        import time, pytest

        @pytest.mark.parametrize("i", range(60))
        def test_slow(i):
            time.sleep(0.1)
        """
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with interruptible_children():
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                *QUIET_PLUGINS,
                "-p",
                "no:cacheprovider",
                "--agents=3",
                "--agents-items=1",
                "--junitxml=j.xml",
                "--agents-metrics=m.json",
            ],
            cwd=pytester.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "parallel agents:" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signum)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, rest
    cases = junit_cases(pytester.path / "j.xml")
    assert 0 < sum(cases.values()) < 60
    metrics = json.loads((pytester.path / "m.json").read_text())
    assert _alive([agent["pid"] for agent in metrics["agents"]]) == []


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_internal_error_in_an_agent_ends_the_run_with_exit_3(
    pytester: pytest.Pytester, start: str
) -> None:
    pytester.makeconftest(
        """
        import os

        def pytest_runtest_logfinish(nodeid):
            if os.environ.get("PYTEST_AGENT_ID") and nodeid.endswith("test_b"):
                raise RuntimeError("plugin bug in an agent")
        """
    )
    pytester.makepyfile(
        test_ie="""
        def test_a(): pass
        def test_b(): pass
        def test_c(): pass
        def test_d(): pass
        """
    )
    start_time = time.monotonic()
    result = pytester.runpytest(
        *QUIET_PLUGINS, "--agents=2", "--agents-items=1", f"--agents-start={start}"
    )
    assert time.monotonic() - start_time < 60
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" in output
    assert "plugin bug in an agent" in output
