"""What a dying agent wrote reaches the report (issue 15 §1.7, pytest-timeout's thread method).

pytest-timeout itself is exercised in tests/e2e/ecosystem; here a conftest does what its thread
method does (the banner and stacks on the terminal writer, then ``os._exit(1)``), so the
plugin's side is tested in every environment. The stacks come from a ``pytest_timeout`` module's
``dump_stacks``, as pytest-timeout's do: agents leave their own threads out of that function's
dump.
"""

from __future__ import annotations

import json

import pytest
from helpers import run

CONFTEST = """
import os
import sys
import threading
import traceback

import types

import pytest


def dump_stacks(terminal):
    # pytest-timeout 2.4.0's, word for word.
    current_ident = threading.current_thread().ident
    for thread_ident, frame in sys._current_frames().items():
        if thread_ident == current_ident:
            continue
        for t in threading.enumerate():
            if t.ident == thread_ident:
                thread_name = t.name
                break
        else:
            thread_name = "<unknown>"
        terminal.sep("~", title="Stack of %s (%s)" % (thread_name, thread_ident))
        terminal.write("".join(traceback.format_stack(frame)))


if "pytest_timeout" not in sys.modules:
    sys.modules["pytest_timeout"] = types.ModuleType("pytest_timeout")
    sys.modules["pytest_timeout"].dump_stacks = dump_stacks


@pytest.fixture(autouse=True)
def _like_pytest_timeout(request):
    marker = request.node.get_closest_marker("die_after")
    if marker is None:
        yield
        return
    main = threading.main_thread().ident

    def expire():
        capman = request.config.pluginmanager.getplugin("capturemanager")
        capman.suspend_global_capture(in_=True)
        terminal = request.config.get_terminal_writer()
        terminal.sep("+", title="Timeout")
        sys.modules["pytest_timeout"].dump_stacks(terminal)
        terminal.sep("+", title="Timeout")
        terminal.flush()
        os._exit(1)

    timer = threading.Timer(marker.args[0], expire)
    timer.start()
    yield
    timer.cancel()
"""

PROJECT = """
import time

import pytest


@pytest.mark.parametrize("n", range(4))
def test_before(n):
    pass


@pytest.mark.die_after(0.3)
def test_hangs():
    time.sleep(30)


@pytest.mark.parametrize("n", range(4))
def test_after(n):
    pass
"""


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_plugin_timeout_is_reported_as_one_with_its_stacks(
    pytester: pytest.Pytester, start: str
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers = die_after\n")
    pytester.makepyfile(test_t=PROJECT)
    result = run(
        pytester,
        "--agents",
        "2",
        "--agents-items",
        "1",
        "--agents-start",
        start,
        "--agents-metrics",
        "m.json",
    )
    text = result.stdout.str()
    assert result.parseoutcomes() == {"failed": 1, "passed": 8}, text
    assert "Timeout: pytest-timeout ended the agent" in text
    assert "in test_hangs" in text  # the test's own stack, from the agent's stderr
    assert "_thread_receiver" not in text  # not the agent's own threads
    assert "Stack of <unknown>" not in text
    metrics = json.loads((pytester.path / "m.json").read_text())
    assert metrics["totals"]["retries"] == 0  # a timeout is never retried
    assert metrics["mode"] == "parallel"  # and the suite does not degrade
