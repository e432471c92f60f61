"""What the controller reports from an agent's faulthandler log after a crash or a timeout."""

from __future__ import annotations

import textwrap

from pytest_parallel_agents.transport.scoreboard import crash_summary

# A timeout's dump (SIGUSR1, every thread) as the agent writes it when the kernel delivers the
# signal to the agent's main thread, which serves execnet while a worker thread runs the test.
STUCK_ON_MAIN = textwrap.dedent(
    """\
    Thread 0x00007f1b2640b6c0 (most recent call first):
      File "/tmp/p/test_hang.py", line 4 in test_hangs
      File "/venv/lib/python3.11/site-packages/_pytest/python.py", line 166 in pytest_pyfunc_call
      File "/venv/lib/python3.11/site-packages/pluggy/_callers.py", line 121 in _multicall

    Current thread 0x00007f1b2740ab80 (most recent call first):
      File "/usr/lib/python3.11/threading.py", line 327 in wait
      File "<string>", line 385 in integrate_as_primary_thread
      File "<string>", line 1 in <module>
    """
)

SEGFAULT = textwrap.dedent(
    """\
    Fatal Python error: Segmentation fault

    Thread 0x00007f1b2740ab80 (most recent call first):
      File "/usr/lib/python3.11/threading.py", line 327 in wait

    Current thread 0x00007f1b2640b6c0 (most recent call first):
      File "/tmp/p/test_crash.py", line 5 in test_crashes
      File "/venv/lib/python3.11/site-packages/_pytest/python.py", line 166 in pytest_pyfunc_call

    Extension modules: _cffi_backend (total: 1)
    """
)


def test_a_timeout_reports_the_thread_running_the_test_not_the_one_that_took_the_signal() -> None:
    summary = crash_summary(STUCK_ON_MAIN, stuck=True)
    assert summary.splitlines() == [
        "Thread 0x00007f1b2640b6c0 (most recent call first):",
        '  File "/tmp/p/test_hang.py", line 4 in test_hangs',
    ]


def test_a_timeout_caught_on_the_test_thread_reports_that_thread() -> None:
    on_test_thread = STUCK_ON_MAIN.replace("Thread 0x00007f1b2640b6c0", "Current thread 0x1")
    on_test_thread = on_test_thread.replace("Current thread 0x00007f1b2740ab80", "Thread 0x2")
    assert crash_summary(on_test_thread, stuck=True).splitlines() == [
        "Current thread 0x1 (most recent call first):",
        '  File "/tmp/p/test_hang.py", line 4 in test_hangs',
    ]


def test_a_crash_reports_the_thread_that_crashed_and_the_fatal_error() -> None:
    assert crash_summary(SEGFAULT).splitlines() == [
        "Fatal Python error: Segmentation fault",
        "Current thread 0x00007f1b2640b6c0 (most recent call first):",
        '  File "/tmp/p/test_crash.py", line 5 in test_crashes',
    ]


def test_a_crash_in_a_thread_outside_pytest_is_still_the_one_reported() -> None:
    # Not the pytest thread: the thread that crashed is what explains the death.
    header = crash_summary(STUCK_ON_MAIN).splitlines()[0]
    assert header.startswith("Current thread 0x00007f1b2740ab80")


def test_a_timeout_without_a_pytest_thread_falls_back_to_the_current_thread() -> None:
    text = 'Current thread 0x1 (most recent call first):\n  File "x.py", line 1 in f\n'
    assert crash_summary(text, stuck=True).splitlines() == [
        "Current thread 0x1 (most recent call first):",
        '  File "x.py", line 1 in f',
    ]


def test_text_that_is_not_a_dump_is_returned_as_it_is() -> None:
    assert crash_summary("killed by the OOM killer") == "killed by the OOM killer"
