"""Interrupts end a run on agents as they end a plain one: at the test's line, fixtures torn down.

Ctrl-C is typed into a real terminal (tmux), as a user would, and what the terminal shows is
compared with a plain run's. A test that raises KeyboardInterrupt itself (a signal it sends
itself) ends the whole run as interrupted, as plainly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import QUIET_PLUGINS, Terminal, wait_until_gone

# Small pools: even four tests go to two agents.
ONE_EACH = ("--agents-items", "1", "--agents-min-items", "1")
START_METHODS = pytest.mark.parametrize("start", ["fork", "spawn"])

_SELF_INTERRUPT = """
import os, signal, time
import pytest

@pytest.mark.parametrize("n", range(4))
def test_before(n):
    time.sleep(0.05)

def test_interrupts_itself():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)

@pytest.mark.parametrize("n", range(4))
def test_after(n):
    time.sleep(0.05)
"""


def _interrupt_lines(text: str) -> list[str]:
    """The lines pytest prints for an interrupt: the banner, the location, the hint."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "KeyboardInterrupt !!!" in line), None)
    assert start is not None, text
    return [line.strip() for line in lines[start : start + 3]]


@START_METHODS
def test_a_test_interrupting_itself_ends_the_run_as_plainly(
    pytester: pytest.Pytester, start: str
) -> None:
    pytester.makepyfile(test_self=_SELF_INTERRUPT)
    args = (*QUIET_PLUGINS, "-p", "no:cacheprovider")
    plain = pytester.runpytest_subprocess(*args, timeout=60)
    parallel = pytester.runpytest_subprocess(
        *args, "--agents", "2", "--agents-start", start, *ONE_EACH, timeout=60
    )
    assert plain.ret == pytest.ExitCode.INTERRUPTED, plain.stdout.str()
    assert parallel.ret == pytest.ExitCode.INTERRUPTED, parallel.stdout.str()
    expected = _interrupt_lines(plain.stdout.str())
    assert re.search(r"test_self\.py:\d+: KeyboardInterrupt$", expected[1]), expected
    assert _interrupt_lines(parallel.stdout.str()) == expected
    assert "INTERNALERROR" not in parallel.stdout.str() + parallel.stderr.str()


# Each test announces that it runs, then blocks; its fixture's teardown leaves a mark.
_BLOCKING = """
import os, time
from pathlib import Path
import pytest

MARKS = Path(os.environ["MARKS"])

@pytest.fixture
def resource(request):
    yield
    (MARKS / ("torn-" + request.node.name)).touch()

@pytest.mark.parametrize("n", range(4))
def test_blocks(resource, n):
    (MARKS / ("running-" + str(n))).touch()
    time.sleep(60)
"""


def _ctrl_c(terminal: Terminal, marks: Path, args: list[str], running: int) -> tuple[str, float]:
    """Start ``pytest args`` in the terminal, type Ctrl-C once ``running`` tests block, and
    return the screen and the seconds from the key to the prompt's exit status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["MARKS"] = str(marks)
    terminal.run([sys.executable, "-m", "pytest", *QUIET_PLUGINS, *args], env)
    deadline = time.monotonic() + 60
    while len(list(marks.glob("running-*"))) < running:
        assert time.monotonic() < deadline, terminal.screen()
        time.sleep(0.05)
    time.sleep(0.2)  # into the test's sleep, past the mark
    typed = time.monotonic()
    terminal.tmux("send-keys", "C-c")
    while "EXIT=" not in terminal.screen():
        assert time.monotonic() < deadline, terminal.screen()
        time.sleep(0.02)
    return terminal.screen(), time.monotonic() - typed


@START_METHODS
def test_ctrl_c_in_a_terminal_is_prompt_and_shows_the_tests_line(
    pytester: pytest.Pytester, terminal: Terminal, start: str
) -> None:
    pytester.makepyfile(test_block=_BLOCKING)
    plain_marks = pytester.mkdir("plain-marks")
    plain, plain_seconds = _ctrl_c(terminal, plain_marks, ["-p", "no:cacheprovider"], 1)
    marks = pytester.mkdir("agent-marks")
    args = ["-p", "no:cacheprovider", "--agents", "2", "--agents-start", start, *ONE_EACH]
    screen, seconds = _ctrl_c(terminal, marks, args, 2)
    assert "EXIT=2" in plain and "EXIT=2" in screen, screen
    assert "INTERNALERROR" not in screen, screen
    # The location is a test's line, as plainly, not the controller's event loop.
    expected = _interrupt_lines(plain)
    assert re.search(r"test_block\.py:\d+: KeyboardInterrupt$", expected[1]), plain
    assert _interrupt_lines(screen) == expected, screen
    # Every interrupted test's fixture was torn down, as plainly: nothing was killed.
    assert sorted(p.name for p in plain_marks.glob("torn-*")) == ["torn-test_blocks[0]"]
    running = sorted(p.name.removeprefix("running-") for p in marks.glob("running-*"))
    torn = sorted(
        p.name.removeprefix("torn-test_blocks[").rstrip("]") for p in marks.glob("torn-*")
    )
    assert torn == running and len(running) == 2, (running, torn, screen)
    assert wait_until_gone(_children_of(terminal)) == []
    # Not a timed assertion of speed: the figures go in the report of a failure only.
    print(f"Ctrl-C to exit: plain {plain_seconds:.2f} s, agents {seconds:.2f} s")


def _children_of(terminal: Terminal) -> list[int]:
    """Processes of the pane's shell other than the shell and its ``sleep``."""
    try:
        shell = terminal.pid()
    except (ValueError, IndexError):
        return []
    found = subprocess.run(
        ["pgrep", "-s", str(os.getsid(shell))], capture_output=True, text=True
    ).stdout.split()
    others = [int(pid) for pid in found if int(pid) != shell]
    names = {
        pid: Path(f"/proc/{pid}/comm").read_text().strip()
        for pid in others
        if Path(f"/proc/{pid}/comm").exists()
    }
    return [pid for pid, name in names.items() if name != "sleep"]
