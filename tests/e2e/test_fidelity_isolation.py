"""Nothing the plugin runs inside an agent is observable to a test (issue 15 §1.1)."""

from __future__ import annotations

import pytest
from helpers import compare, summary_counts

# Functions a test may patch process-wide while it polls (mock.patch("pkg.time.sleep") is
# time's own sleep); an agent's threads looking them up at call time land in the test's mock
# (or, with freezegun, in a frozen clock).
PATCHED = [
    "time.sleep",
    "time.time",
    "time.monotonic",
    "time.perf_counter",
    "os.getppid",
    "os.getpid",
    "os.read",
    "os.write",
    "os.pwrite",
    "os.kill",
    "select.select",
    "select.poll",
    "socket.socket",
    "threading.Thread",
    "threading.Event",
    "threading.Lock",
]

PROJECT = f"""
import contextlib
import importlib
import threading
import time
from unittest import mock

_sleep = time.sleep
_monotonic = time.monotonic


def test_no_agent_thread_calls_what_a_test_patches():
    me = threading.get_ident()
    foreign = {{}}

    def spy_for(target, real):
        def spy(*args, **kwargs):
            if threading.get_ident() != me:
                foreign[target] = foreign.get(target, 0) + 1
            return real(*args, **kwargs)

        return spy

    with contextlib.ExitStack() as stack:
        for target in {PATCHED!r}:
            module, name = target.rsplit(".", 1)
            real = getattr(importlib.import_module(module), name)
            stack.enter_context(mock.patch(target, side_effect=spy_for(target, real)))
        # Longer than an agent's heartbeat (1 s), its result backstop (50 ms) and its
        # parent check: whatever its threads do while a test runs happens in here.
        end = _monotonic() + 1.3
        while _monotonic() < end:
            _sleep(0.01)
    assert foreign == {{}}, f"called from other threads while the test ran: {{foreign}}"


def test_the_threads_a_test_sees_are_those_of_a_plain_run():
    assert [t.name for t in threading.enumerate()] == ["MainThread"]
    assert threading.active_count() == 1
"""


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_agent_threads_are_invisible_to_tests(pytester: pytest.Pytester, start: str) -> None:
    pytester.makepyfile(test_isolation=PROJECT)
    # One agent per test file would run in-process: two agents, one test each.
    args = ("--agents", "2", "--agents-items", "1", "--agents-min-items", "1")
    # In subprocesses: the outer test process has threads of its own.
    _plain, parallel = compare(
        pytester, agents_args=(*args, "--agents-start", start), subprocess=True
    )
    assert summary_counts(parallel) == {"passed": 2}


# A leak test in the manner of markupsafe's test_markup_leaks: it counts the objects the
# garbage collector tracks between iterations of a loop that should leave nothing behind.
# Quick tests before it leave results for the agent's backstop to send while it runs (its
# 150 ms are three backstop periods), and the controller answers with more tests.
LEAK_PROJECT = """
import gc

import pytest


@pytest.mark.parametrize("i", range(40))
def test_before(i):
    pass


def test_counts_what_the_gc_tracks():
    gc.collect()
    counts = []
    for _ in range(600):
        for _ in range(2000):
            str(12345)
        counts.append(len(gc.get_objects()))
    del counts[0]  # the first sample counts the list before it grew
    # A send from the agent's backstop may show its objects in flight for a moment (a few
    # samples, the last ones included); nothing may stay, so the count comes back to where
    # it was: sampled on a while longer, it must meet it again.
    usual = max(set(counts), key=counts.count)
    assert counts.count(usual) >= 0.9 * len(counts), sorted(set(counts))
    last = counts[-1]  # (no new container: it would be one more object tracked)
    for _ in range(2000):
        if last == usual:
            break
        last = len(gc.get_objects())
    assert last == usual, (usual, last, counts[-20:])


@pytest.mark.parametrize("i", range(40))
def test_after(i):
    pass
"""


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_agent_threads_leave_no_object_a_leak_test_counts(
    pytester: pytest.Pytester, start: str
) -> None:
    pytester.makepyfile(test_leak=LEAK_PROJECT)
    _plain, parallel = compare(
        pytester, agents_args=("--agents", "2", "--agents-start", start), subprocess=True
    )
    assert summary_counts(parallel) == {"passed": 81}
