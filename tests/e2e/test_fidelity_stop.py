"""Runs that stop at the first failure stop where a plain run does (issue 15 §1.9)."""

from __future__ import annotations

import pytest
from helpers import run, summary_line

# 60 tests; the one at index 40 fails while FAIL_AT_40 is set.
PROJECT = """
import os
import time

import pytest


@pytest.mark.parametrize("n", range(60))
def test_n(n):
    time.sleep(0.002)
    if n == 40 and os.environ.get("FAIL_AT_40"):
        raise AssertionError("fails at 40")
"""

AGENTS = ("--agents", "2", "--agents-items", "1")


def _sequence(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, extra: tuple[str, ...]
) -> list[str]:
    """Three --sw runs in a project of its own (its own cache): failing, failing, fixed."""
    folder = pytester.mkdir(name)
    folder.joinpath("test_sw.py").write_text(PROJECT)
    folder.joinpath("pytest.ini").write_text("[pytest]\n")
    monkeypatch.chdir(folder)
    lines = []
    monkeypatch.setenv("FAIL_AT_40", "1")
    for _ in range(2):
        lines.append(summary_line(run(pytester, "--sw", "-q", *extra)))
    monkeypatch.delenv("FAIL_AT_40")
    lines.append(summary_line(run(pytester, "--sw", "-q", *extra)))
    return lines


def test_stepwise_stops_and_resumes_as_a_plain_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _sequence(pytester, monkeypatch, "plain", ())
    agents = _sequence(pytester, monkeypatch, "agents", AGENTS)
    assert plain[:2] == ["1 failed, 40 passed", "1 failed, 40 deselected"]
    assert agents == plain


@pytest.mark.parametrize("stop", [("-x",), ("--maxfail", "2")])
def test_exit_first_reports_what_a_plain_run_reports(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, stop: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_x=PROJECT.replace("n == 40", "n in (40, 45)"))
    monkeypatch.setenv("FAIL_AT_40", "1")
    plain = run(pytester, "-q", "-p", "no:cacheprovider", *stop)
    agents = run(pytester, "-q", "-p", "no:cacheprovider", *stop, *AGENTS)
    assert summary_line(agents) == summary_line(plain)
