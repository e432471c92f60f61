"""The live view as a person sees it: in a real terminal (tmux) while the run goes, nothing of
it after, and none of it when the output is not a terminal (issue 17)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from helpers import QUIET_PLUGINS, Terminal

PROJECT = """
import time
import pytest

@pytest.mark.parametrize("n", range(12))
def test_sleep(n):
    time.sleep(0.4)

def test_fails():
    assert 0
"""
ARGS = ["--agents", "2", "-p", "no:cacheprovider", "test_shown.py"]
# What differs between two runs of the same tests: seconds and utilisation.
_SECONDS = re.compile(r"\d+\.\d+|\b\d+%")


def _environment() -> dict[str, str]:
    # As a person's shell: not CI (the live view stays out of CI logs), no outer agent.
    return {
        k: v
        for k, v in os.environ.items()
        # TERM is tmux's own (the outer run's may be "dumb", which turns the view off).
        if not k.startswith(("PYTEST_", "CI")) and k not in ("GITHUB_ACTIONS", "TERM")
    }


def _finish(terminal: Terminal, deadline: float) -> str:
    while "EXIT=" not in terminal.screen():
        assert time.monotonic() < deadline, terminal.screen()
        time.sleep(0.05)
    return terminal.screen()


def _normal(screen: str) -> list[str]:
    # Columns are right-aligned ("100%" against " 99%"): compare words, not spaces.
    lines = [" ".join(_SECONDS.sub("S", line).split()) for line in screen.splitlines()]
    return [line for line in lines if line]


def test_the_live_lines_show_while_running_and_leave_nothing_behind(
    pytester: pytest.Pytester, terminal: Terminal
) -> None:
    pytester.makepyfile(test_shown=PROJECT)
    # The tmux server keeps the environment of whoever started it (CI=true in CI): unset it.
    command = ["env", "-u", "CI", sys.executable, "-m", "pytest", *QUIET_PLUGINS, *ARGS]
    terminal.run(command, _environment())
    deadline = time.monotonic() + 60
    during = ""
    while "tests done" not in during or "test_shown.py::test_sleep[" not in during:
        assert time.monotonic() < deadline and "EXIT=" not in during, during
        time.sleep(0.05)
        during = terminal.screen()
    agents = [line for line in during.splitlines() if re.match(r"  unit-[01]  ", line)]
    assert agents, during
    assert re.search(r"  \d+/13 tests done", during), during
    after = _finish(terminal, deadline)
    assert "tests done" not in after and not re.search(r"^  unit-\d", after, re.M), after

    terminal.run([*command, "--agents-live=off"], _environment())  # the same, without it
    plain_screen = _finish(terminal, time.monotonic() + 60)
    assert _normal(after) == _normal(plain_screen)


def test_nothing_of_it_reaches_a_pipe(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shown=PROJECT)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET_PLUGINS, *ARGS, "--agents-live=on"],
        cwd=pytester.path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    assert "\x1b[" not in done.stdout
    assert "tests done" not in done.stdout
    assert "1 failed, 12 passed" in done.stdout


def test_a_bad_setting_is_one_usage_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shown=PROJECT)
    result = pytester.runpytest_subprocess(*QUIET_PLUGINS, "--agents", "2", "--agents-live=loud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == "ERROR: --agents-live expects auto, on or off, got 'loud'"
