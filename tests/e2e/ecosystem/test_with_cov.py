"""pytest-cov: ``--cov`` with ``--agents`` gives the figure of a plain ``--cov`` run.

The measured package has import-time lines, a branch each way, a function no test calls and a
module imported only by a conftest, so that every agent's share (and the controller's
collection) must be combined to reach the plain figure.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ecosystem_helpers import (
    ALL_AGENT_MODES,
    Run,
    assert_same_outcomes,
    run_pytest,
    section,
    write_files,
)

ARGS = ("--cov=pkg", "--cov-branch", "--cov-report=term-missing")

PROJECT = {
    "pkg/__init__.py": """
        VERSION = "1.0"
    """,
    "pkg/shapes.py": """
        import math

        UNIT = 1.0


        def area(kind, size):
            if kind == "square":
                return size * size
            elif kind == "circle":
                return math.pi * size * size
            raise ValueError(kind)


        def perimeter(kind, size):
            if kind == "square":
                return 4 * size
            return 2 * math.pi * size


        def never_called():
            total = 0
            for i in range(10):
                total += i
            return total
    """,
    "pkg/loaded.py": """
        SETTINGS = {"debug": False}


        def configure(debug):
            SETTINGS["debug"] = debug
            return SETTINGS
    """,
    "conftest.py": """
        import pkg.loaded

        pkg.loaded.configure(True)
    """,
    "test_area.py": """
        import pytest

        from pkg.shapes import area


        def test_square():
            assert area("square", 2) == 4


        def test_circle():
            assert area("circle", 1) > 3


        def test_bad():
            with pytest.raises(ValueError):
                area("hexagon", 1)
    """,
    "test_perimeter.py": """
        from pkg.shapes import perimeter


        def test_square():
            assert perimeter("square", 1) == 4


        def test_fails():
            assert perimeter("square", 1) == 5
    """,
}

_ROW = re.compile(r"^(\S+\.py|TOTAL)\s+\d")


def coverage_table(run: Run) -> list[str]:
    """The rows of pytest-cov's terminal report (files and TOTAL), spaces normalised."""
    rows = []
    for line in section(run, "tests coverage"):
        if _ROW.match(line):
            rows.append(" ".join(line.split()))
    if not rows:  # the coverage section's title differs between versions
        rows = [" ".join(line.split()) for line in run.lines if _ROW.match(line)]
    return rows


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("cov"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> Run:
    run = run_pytest(project, "plain", *ARGS, tag="")
    assert run.summary == "1 failed, 4 passed", run.describe()
    rows = coverage_table(run)
    assert rows and rows[-1].startswith("TOTAL"), run.describe()
    assert not rows[-1].endswith("100%"), run.describe()
    return run


@pytest.mark.parametrize("mode", ALL_AGENT_MODES)
def test_cov_figure_same_as_plain(project: Path, plain: Run, mode: str) -> None:
    run = run_pytest(project, mode, *ARGS)
    assert_same_outcomes(plain, run)
    assert coverage_table(run) == coverage_table(plain), plain.describe() + run.describe()
