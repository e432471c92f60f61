"""What a terminal user sees equals a plain run's, up to the order of tests (issue 15 §1.5)."""

from __future__ import annotations

import re

import pytest
from helpers import run

PROJECT = """
import warnings

import pytest


def test_pass():
    pass


def test_fail():
    assert 1 == 2


@pytest.mark.skip(reason="skipped on purpose")
def test_skip():
    pass


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


def test_subtests(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert True


def test_warns():
    warnings.warn("careful", UserWarning)


@pytest.mark.parametrize("n", range(6))
def test_many(n):
    pass
"""

_PROGRESS = re.compile(r"\s*\[\s*\d+%\]$")
_TIMING = re.compile(r" in [\d.]+s( \([\d:]+\))?")


def _normalised(result: pytest.RunResult, verbosity: str) -> list[object]:
    """The output with the plugin's own lines taken out and the progress made order-free."""
    lines = [_TIMING.sub("", line) for line in result.outlines]
    out: list[object] = []
    progress: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("parallel agents:"):
            continue  # the plan line
        if re.match(r"^-+ parallel agents -+$", line):
            skipping = True
            continue
        if skipping:
            if line.startswith("="):
                skipping = False
            else:
                continue
        if _PROGRESS.search(line):
            progress.append(_PROGRESS.sub("", line))
            continue
        out.append(line)
    if verbosity in ("-q", "-qq"):
        letters = "".join(progress)
        return [sorted(letters), *out]
    if verbosity == "":
        files = sorted(
            (head, sorted(letters)) for head, _, letters in (p.partition(" ") for p in progress)
        )
        return [files, *out]
    return [sorted(progress), *out]


@pytest.mark.parametrize("verbosity", ["-qq", "-q", "", "-v"])
def test_terminal_output_equals_a_plain_run(pytester: pytest.Pytester, verbosity: str) -> None:
    pytester.makepyfile(test_one=PROJECT, test_two=PROJECT)
    args = [a for a in (verbosity, "-ra", "-p", "no:cacheprovider") if a]
    plain = run(pytester, *args)
    parallel = run(pytester, *args, "--agents", "2", "--agents-items", "1")
    context = f"--- plain ---\n{plain.stdout.str()}\n--- agents ---\n{parallel.stdout.str()}"
    assert _normalised(parallel, verbosity) == _normalised(plain, verbosity), context
    has_section = any("parallel agents" in line for line in parallel.outlines)
    assert has_section == (verbosity != "-qq"), context
