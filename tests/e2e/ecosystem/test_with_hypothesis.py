"""hypothesis: property tests, the example database (a failure found in one run is replayed
first in the next), and ``--hypothesis-show-statistics``.

Each mode runs in its own copy of the project, so that each starts with an empty database (not
seeded: hypothesis saves nothing with ``--hypothesis-seed``). The examples are random, so the
statistics are compared by test and phase, not by example counts.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from ecosystem_helpers import (
    Run,
    assert_same_outcomes,
    junit_messages,
    run_pytest,
    section,
    write_files,
)

QUIET = ("-p", "no:randomly")
ARGS = ("--hypothesis-show-statistics",)

PROJECT = {
    "conftest.py": """
        from pathlib import Path

        from hypothesis import settings
        from hypothesis.database import DirectoryBasedExampleDatabase

        # Named outright: under CI hypothesis' default profile has no database and is
        # derandomized, and this project's runs must save and replay examples anywhere.
        settings.register_profile(
            "ecosystem",
            deadline=None,
            print_blob=False,
            max_examples=50,
            derandomize=False,
            database=DirectoryBasedExampleDatabase(
                Path(__file__).parent / ".hypothesis" / "examples"
            ),
        )
        settings.load_profile("ecosystem")
    """,
    "test_properties.py": """
        from hypothesis import given, strategies as st


        @given(st.integers())
        def test_integers_are_integers(x):
            assert isinstance(x, int)


        @given(st.lists(st.integers()))
        def test_sorting_is_idempotent(xs):
            assert sorted(sorted(xs)) == sorted(xs)


        @given(st.integers(min_value=0, max_value=10**6))
        def test_small_numbers_only(x):
            assert x < 1000
    """,
    "test_text.py": """
        from hypothesis import given, strategies as st


        # An alphabet of its own: hypothesis' full unicode table costs seconds to build.
        @given(st.text(alphabet="abcdefgh\u00e9\u4e2d"))
        def test_roundtrip(s):
            assert s.encode("utf-8").decode("utf-8") == s


        @given(st.text(alphabet="xyz", max_size=5))
        def test_no_z(s):
            assert "z" not in s
    """,
}

_SECONDS = re.compile(r" \([\d.]+ seconds\)")


def statistics(run: Run) -> dict[str, list[str]]:
    """The ``Hypothesis Statistics`` section per test: the phases it reports."""
    found: dict[str, list[str]] = {}
    test = None
    for line in section(run, "Hypothesis Statistics"):
        if line.endswith(":") and "::" in line:
            test = line[:-1]
            found[test] = []
        elif test is not None and line.strip().startswith("- during "):
            found[test].append(_SECONDS.sub("", line.strip()))
    return found


def database_entries(project: Path) -> int:
    """How many tests have examples saved in the database (a directory per test key)."""
    examples = project / ".hypothesis" / "examples"
    return sum(1 for path in examples.iterdir() if path.is_dir()) if examples.exists() else 0


def _two_runs(template: Path, mode: str) -> tuple[Run, Run, int]:
    project = template.parent / f"{template.name}-{mode}"
    shutil.copytree(template, project)
    first = run_pytest(project, mode, *ARGS, quiet=QUIET, tag="-first")
    entries = database_entries(project)
    second = run_pytest(project, mode, *ARGS, quiet=QUIET, tag="-second")
    return first, second, entries


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("hypothesis"), PROJECT)


@pytest.fixture(scope="module")
def plain(template: Path) -> tuple[Run, Run, int]:
    first, second, entries = _two_runs(template, "plain")
    assert first.summary == "2 failed, 3 passed", first.describe()
    assert entries > 0, "the plain run saved nothing in the example database"
    stats = statistics(second)
    assert len(stats) == 5, second.describe()
    # The second run replays the failures the first one saved.
    failing = stats["test_properties.py::test_small_numbers_only"]
    assert any("reuse phase" in line for line in failing), second.describe()
    return first, second, entries


# Two runs a mode, each loading all of hypothesis in every spawned agent: two modes only.
@pytest.mark.parametrize("mode", ["fork2", "spawn2"])
def test_hypothesis_same_as_plain(template: Path, plain: tuple[Run, Run, int], mode: str) -> None:
    plain_first, plain_second, _ = plain
    first, second, entries = _two_runs(template, mode)
    assert_same_outcomes(plain_first, first)
    assert_same_outcomes(plain_second, second)
    # The falsifying examples (shrunk to the same minimal ones).
    assert junit_messages(first.junit_path) == junit_messages(plain_first.junit_path)
    assert entries > 0, "nothing saved in the example database\n" + first.describe()
    context = plain_second.describe() + "\n" + second.describe()
    assert statistics(first) == statistics(plain_first), context
    assert statistics(second) == statistics(plain_second), context
