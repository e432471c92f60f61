"""pytest-timeout: the signal method (SIGALRM fails the test, the run goes on) and the thread
method (a stack dump, then ``os._exit(1)`` of the process running the test).

A plain run does not survive the thread method: it dies at the first timeout. On agents, as on
pytest-xdist's workers, the test is failed and the other tests run; what the plugin adds is the
report: pytest-timeout's ``Timeout`` stack dump in the failure, and no degraded suite (issue 15
§1: it used to say only that the agent exited with status 1, and degrade).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    QUIET,
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
    # A test with a thread of its own: pytest-timeout dumps that thread's stack too.
    "test_helper_signal.py": """
        import threading
        import time

        import pytest


        def wait_for(release):
            release.wait()


        @pytest.fixture
        def helper():
            release = threading.Event()
            thread = threading.Thread(target=wait_for, args=(release,), name="helper-waiting")
            thread.start()
            yield thread
            release.set()
            thread.join()


        @pytest.mark.timeout(1, method="signal")
        def test_hangs_beside_its_thread(helper):
            time.sleep(30)


        @pytest.mark.parametrize("n", range(3))
        def test_quick(n):
            time.sleep(0.05)
    """,
    "test_helper_thread.py": """
        import threading
        import time

        import pytest


        def wait_for(release):
            release.wait()


        @pytest.fixture
        def helpers():
            release = threading.Event()
            # One with a frame of the test's module, one with frames of threading.py alone.
            threads = [
                threading.Thread(
                    target=wait_for, args=(release,), name="helper-waiting", daemon=True
                ),
                threading.Thread(target=release.wait, name="helper-bare", daemon=True),
            ]
            for thread in threads:
                thread.start()
            yield threads
            release.set()


        @pytest.mark.timeout(1, method="thread")
        def test_hangs_beside_its_threads(helpers):
            time.sleep(30)


        @pytest.mark.parametrize("n", range(3))
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


# pytest-rerunfailures serves its xdist socket on a thread of its own in a plain run and in a
# spawned agent, not in a forked one: these runs compare the test's own threads alone.
HELPER_QUIET = (*QUIET, "-p", "no:rerunfailures")
# pytest-timeout's dump: between two banners, a "~~~ Stack of NAME (ident) ~~~" line before
# each thread's frames. (The thread method's first banner in a plain run follows the progress
# letters on their line; the last one in a crash report ends the text.)
_BANNER = re.compile(r"\++ Timeout \++(?:\n|$)")
_STACK_OF = re.compile(r"^~+ Stack of (.*) \(\d+\) ~+$", re.MULTILINE)
_FRAME = re.compile(r'^  File "(.*)", line \d+, in .*$', re.MULTILINE)
# Frames of the agent's machinery: execnet (a spawned agent runs it from source: "<string>"),
# our bootstrap ("<remote exec>") and the plugin itself.
_AGENT_FRAMES = ("/execnet/", "/pytest_parallel_agents/", "<string>", "<remote exec>")


def _dumped_stacks(text: str) -> dict[str, str]:
    """The first pytest-timeout dump in ``text``: each thread's name and its frames."""
    parts = _BANNER.split(text)
    assert len(parts) >= 3, f"no pytest-timeout dump in:\n{text}"
    body = parts[1]
    found = list(_STACK_OF.finditer(body))
    ends = [match.start() for match in found[1:]] + [len(body)]
    return {
        match[1]: body[match.end() : end].strip("\n")
        for match, end in zip(found, ends, strict=False)
    }


def _assert_only_the_tests_threads(stacks: dict[str, str], context: str) -> None:
    assert stacks, context
    assert "<unknown>" not in stacks, context
    for name, frames in stacks.items():
        files = _FRAME.findall(frames)
        assert files, f"{name}: no frames\n{context}"
        ours = [path for path in files if any(part in path for part in _AGENT_FRAMES)]
        assert not ours, f"{name}: the agent's frames {ours}\n{context}"


def _entries(frames: str) -> list[str]:
    """A stack's entries: each frame's "File" line with its source line."""
    return [entry for entry in re.split(r"\n(?=  File )", frames) if entry]


@pytest.fixture(scope="module")
def plain_signal_helper(project: Path) -> Run:
    run = run_pytest(project, "plain", "test_helper_signal.py", quiet=HELPER_QUIET, tag="-sh")
    assert run.summary == "1 failed, 3 passed", run.describe()
    return run


@pytest.mark.parametrize("mode", ["fork2", "spawn2"])
def test_signal_method_dumps_the_tests_threads_only(
    project: Path, plain_signal_helper: Run, mode: str
) -> None:
    """The signal method's dump is in the failed test's captured output (a plain run's
    stdout, an agent's stderr: its terminal writer): the thread the test started, as in a
    plain run, and none of the agent's (execnet's, the result flusher's)."""
    run = run_pytest(project, mode, "test_helper_signal.py", quiet=HELPER_QUIET, tag="-sh")
    assert_same_outcomes(plain_signal_helper, run)
    context = plain_signal_helper.describe() + "\n" + run.describe()
    plain_stacks = _dumped_stacks(plain_signal_helper.stdout)
    assert list(plain_stacks) == ["helper-waiting"], context
    stacks = _dumped_stacks(run.stdout)
    _assert_only_the_tests_threads(stacks, context)
    assert stacks == plain_stacks, context
    assert "in wait_for" in stacks["helper-waiting"], context


@pytest.fixture(scope="module")
def plain_thread_helper(project: Path) -> Run:
    run = run_pytest(project, "plain", "test_helper_thread.py", quiet=HELPER_QUIET, tag="-th")
    # A plain run does not survive the thread method: its dump, then os._exit(1).
    assert run.returncode == 1, run.describe()
    return run


@pytest.mark.parametrize("mode", ["fork2", "spawn2"])
def test_thread_method_dumps_the_tests_threads_only(
    project: Path, plain_thread_helper: Run, mode: str
) -> None:
    """The crash report of the agent pytest-timeout ended carries its dump: the test's threads
    and the main thread running the test, as in a plain run, less the agent's own threads
    and the agent's frames around pytest's."""
    run = run_pytest(project, mode, "test_helper_thread.py", quiet=HELPER_QUIET, tag="-th")
    context = plain_thread_helper.describe() + "\n" + run.describe()
    assert run.returncode == 1, context
    assert run.summary == "1 failed, 3 passed", context
    assert_parallel(run)
    failure = junit_messages(run.junit_path)["test_helper_thread.test_hangs_beside_its_threads"]
    context += "\n--- the failure ---\n" + failure
    assert "Timeout" in failure, context
    plain_stacks = _dumped_stacks(plain_thread_helper.stdout)
    assert sorted(plain_stacks) == ["MainThread", "helper-bare", "helper-waiting"], context
    # (The failure's message repeats its first lines, cut short: the element's text has it all.)
    stacks = _dumped_stacks(failure.rpartition("--- the agent's last stderr ---")[2])
    _assert_only_the_tests_threads(stacks, context)
    assert sorted(stacks) == sorted(plain_stacks), context
    for name in ("helper-bare", "helper-waiting"):
        assert stacks[name] == plain_stacks[name], context
    assert "in wait_for" in stacks["helper-waiting"], context
    # The main thread's stack ends as the plain run's: from pytest's runner to the test.
    plain_main = _entries(plain_stacks["MainThread"])
    start = next(i for i, entry in enumerate(plain_main) if "in pytest_runtest_protocol" in entry)
    tail = plain_main[start:]
    assert _entries(stacks["MainThread"])[-len(tail) :] == tail, context
    assert "time.sleep(30)" in tail[-1], context
