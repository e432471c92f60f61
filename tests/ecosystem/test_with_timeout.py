"""pytest-timeout: the signal method (SIGALRM fails the test, the run goes on) and the thread
method (a stack dump, then ``os._exit(1)`` of the process running the test).

A plain run does not survive the thread method: it dies at the first timeout. On agents, as on
pytest-xdist's workers, the test is failed and the other tests run; what the plugin adds is the
report: pytest-timeout's ``Timeout`` stack dump in the failure, and no degraded suite (issue 15
§1: it used to say only that the agent exited with status 1, and degrade).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    Run,
    assert_parallel,
    assert_same_outcomes,
    junit_messages,
    run_pytest,
    write_files,
)

PROJECT = {
    "test_slow.py": """
        import time

        import pytest


        @pytest.mark.timeout(1)
        def test_hangs():
            time.sleep(30)


        def test_hangs_by_option():
            time.sleep(30)


        @pytest.mark.timeout(0)
        def test_unlimited():
            time.sleep(0.05)


        @pytest.mark.parametrize("n", range(3))
        def test_quick(n):
            time.sleep(0.05)
    """,
    "test_thread.py": """
        import time

        import pytest


        @pytest.mark.timeout(1, method="thread")
        def test_hangs_in_thread_method():
            time.sleep(30)


        @pytest.mark.parametrize("n", range(4))
        def test_quick(n):
            time.sleep(0.05)
    """,
}

SIGNAL = ("test_slow.py", "--timeout=1.5", "--timeout-method=signal")
TIMEOUT_MESSAGE = {
    "test_slow.test_hangs": "Failed: Timeout (>1.0s) from pytest-timeout.",
    "test_slow.test_hangs_by_option": "Failed: Timeout (>1.5s) from pytest-timeout.",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("timeout"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> Run:
    run = run_pytest(project, "plain", *SIGNAL)
    assert run.summary == "2 failed, 4 passed", run.describe()
    return run


def _heads(run: Run) -> dict[str, str]:
    return {name: text.splitlines()[0] for name, text in junit_messages(run.junit_path).items()}


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_signal_method_same_as_plain(project: Path, plain: Run, mode: str) -> None:
    run = run_pytest(project, mode, *SIGNAL)
    assert_same_outcomes(plain, run)
    assert _heads(plain) == TIMEOUT_MESSAGE, plain.describe()
    assert _heads(run) == TIMEOUT_MESSAGE, run.describe() + junit_messages(run.junit_path).get(
        "test_slow.test_hangs_by_option", ""
    )


@pytest.mark.parametrize("mode", ["fork2", "spawn2"])
def test_thread_method_reports_the_timeout(project: Path, mode: str) -> None:
    run = run_pytest(project, mode, "test_thread.py", tag="-thread")
    context = run.describe()
    assert run.returncode == 1, context
    assert run.summary == "1 failed, 4 passed", context
    assert run.junit == {
        ("test_thread", "test_hangs_in_thread_method", "failure"): 1,
        **{("test_thread", f"test_quick[{n}]", "passed"): 1 for n in range(4)},
    }, context
    # pytest-timeout's own words and the stack it dumped, as the plain run prints them.
    failure = junit_messages(run.junit_path)["test_thread.test_hangs_in_thread_method"]
    assert "Timeout" in failure and "time.sleep(30)" in failure, context
    assert "DEGRADED" not in run.stdout, context
    assert_parallel(run)
