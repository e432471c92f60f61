"""pytest-rerunfailures: reruns of flaky tests (``--reruns``, the ``flaky`` marker), and the
rerun of a test that crashed its process (pytest-xdist's worker; here the agent).

Each test counts its attempts in a file, so the comparison covers how often it ran, not only
the outcome and the ``N rerun`` count of the summary line. A crash has no plain run to
compare with: pytest-xdist's workers (``-n 2``) with rerunfailures are the reference.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    Run,
    assert_parallel,
    assert_same_outcomes,
    run_pytest,
    section,
    write_files,
)

COUNTER = """
    import json
    import os
    from pathlib import Path


    def attempt(name):
        "Count one more attempt of `name`; return how many there were, this one included."
        path = Path(os.environ["COUNTS"]) / name
        count = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(count))
        return count
"""

PROJECT = {
    "counter.py": COUNTER,
    "test_flaky.py": """
        import pytest

        from counter import attempt


        def test_passes_on_third_attempt():
            assert attempt("third") >= 3


        def test_always_fails():
            attempt("always")
            assert False, "broken for good"


        def test_steady():
            attempt("steady")


        @pytest.mark.flaky(reruns=1)
        def test_marker_second_attempt():
            assert attempt("marker") == 2


        @pytest.fixture
        def shaky():
            if attempt("fixture") == 1:
                raise RuntimeError("setup failed once")


        def test_with_shaky_fixture(shaky):
            pass


        @pytest.mark.parametrize("n", range(3))
        def test_param(n):
            attempt(f"param{n}")
    """,
}

CRASHING = {
    "counter.py": COUNTER,
    "test_crash.py": """
        import os

        from counter import attempt


        def test_crashes_once():
            if attempt("crash") == 1:
                os._exit(3)


        def test_one():
            attempt("one")


        def test_two():
            attempt("two")


        def test_three():
            attempt("three")
    """,
}


# Crashes on every attempt, or on the first and then fails: with ``--reruns 2`` both end in a
# failure after 2 reruns, since crashes and failures share a test's reruns.
EXHAUSTED = {
    "always": """
        import os

        from counter import attempt


        def test_one():
            attempt("one")


        def test_crashes_always():
            attempt("crash")
            os._exit(4)


        def test_two():
            attempt("two")


        def test_three():
            attempt("three")
    """,
    "then_fails": """
        import os

        from counter import attempt


        def test_one():
            attempt("one")


        def test_crashes_then_fails():
            if attempt("crash") == 1:
                os._exit(3)
            assert False, "broken for good"


        def test_two():
            attempt("two")


        def test_three():
            attempt("three")
    """,
}

# The rerun summary (``-rR``) too: each attempt in order, the crash's own lines included.
RERUN_SUMMARY = ("-rAR",)


def _run(project: Path, mode: str, tag: str, *args: str, **kwargs: Any) -> tuple[Run, dict]:
    counts = project.parent / f"{project.name}-counts-{mode}{tag}"
    counts.mkdir()
    run = run_pytest(project, mode, *args, env={"COUNTS": str(counts)}, tag=tag, **kwargs)
    return run, {path.name: int(path.read_text()) for path in counts.iterdir()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("rerun"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> tuple[Run, dict]:
    run, counts = _run(project, "plain", "", "--reruns", "2")
    assert run.summary == "1 failed, 7 passed, 6 rerun", run.describe()
    assert counts == {
        "third": 3,
        "always": 3,
        "steady": 1,
        "marker": 2,
        "fixture": 2,
        "param0": 1,
        "param1": 1,
        "param2": 1,
    }, counts
    return run, counts


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_reruns_same_as_plain(project: Path, plain: tuple[Run, dict], mode: str) -> None:
    plain_run, plain_counts = plain
    run, counts = _run(project, mode, "", "--reruns", "2")
    assert_same_outcomes(plain_run, run)
    assert counts == plain_counts
    rerun_lines = sorted(line for line in run.lines if line.startswith("RERUN"))
    assert rerun_lines == sorted(line for line in plain_run.lines if line.startswith("RERUN"))


@pytest.fixture(scope="module")
def crashing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("crash"), CRASHING)


def _xdist_cases(run: Run) -> Counter[tuple[str, str, str]]:
    """pytest-xdist's JUnit test cases as the agents' run writes them.

    Without the nameless ``<testcase/>`` each crash report adds (junitxml keys it by the
    worker, apart from the test's own case), and with a crash's failure as ``failure``: xdist's
    crash report has no phase (``when="???"``), which junitxml writes as an ``error`` "failed
    on setup" though the terminal counts it failed; the agents' crash report is a failed call.
    """
    cases: Counter[tuple[str, str, str]] = Counter()
    for (classname, name, outcome), n in run.junit.items():
        if name:
            cases[(classname, name, "failure" if outcome == "error" else outcome)] += n
    return cases


@pytest.fixture(scope="module")
def xdist(crashing: Path) -> tuple[Run, dict]:
    """The reference for a crash: pytest-xdist's workers (a plain run cannot survive it)."""
    run, counts = _run(
        crashing, "plain", "-xdist", "--reruns", "1", *RERUN_SUMMARY, pytest_args=("-n", "2")
    )
    if run.summary == "1 failed, 3 passed":
        # rerunfailures learns of a crashed xdist worker over a socket; now and then the
        # replacement worker runs on before it has, and the crash is not rerun.
        pytest.skip("pytest-xdist's own crash rerun did not happen this time: no reference")
    assert run.summary == "4 passed, 1 rerun", run.describe()
    assert counts == {"crash": 2, "one": 1, "two": 1, "three": 1}, counts
    return run, counts


def _assert_like_xdist(run: Run, counts: dict, xdist_run: Run, xdist_counts: dict) -> None:
    assert_parallel(run)
    context = xdist_run.describe() + "\n" + run.describe()
    assert run.returncode == xdist_run.returncode, context
    assert counts == xdist_counts, context
    assert run.junit == _xdist_cases(xdist_run), context
    assert run.summary == xdist_run.summary, context
    rerun_summary = section(run, "rerun test summary info")
    assert rerun_summary, context
    assert rerun_summary == section(xdist_run, "rerun test summary info"), context


@pytest.mark.parametrize("mode", ["fork2", "spawn2"])
def test_crash_rerun_like_xdist(crashing: Path, xdist: tuple[Run, dict], mode: str) -> None:
    """A test that kills its process once is rerun, and counted as a rerun, as rerunfailures
    does for a crashed pytest-xdist worker."""
    xdist_run, xdist_counts = xdist
    run, counts = _run(crashing, mode, "", "--reruns", "1", *RERUN_SUMMARY)
    _assert_like_xdist(run, counts, xdist_run, xdist_counts)


@pytest.fixture(scope="module", params=sorted(EXHAUSTED))
def exhausted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Run, dict]:
    """A test whose reruns all end in crashes or failures, and pytest-xdist's run of it."""
    files = {"counter.py": COUNTER, "test_crash.py": EXHAUSTED[request.param]}
    project = write_files(tmp_path_factory.mktemp(f"exhausted-{request.param}"), files)
    run, counts = _run(
        project, "plain", "-xdist", "--reruns", "2", *RERUN_SUMMARY, pytest_args=("-n", "2")
    )
    if run.summary in ("1 failed, 3 passed", "1 failed, 3 passed, 1 rerun"):
        # As in ``xdist``: the replacement worker ran on before rerunfailures heard of a crash.
        pytest.skip(f"pytest-xdist's own crash reruns did not all happen: {run.summary}")
    assert run.summary == "1 failed, 3 passed, 2 rerun", run.describe()
    assert counts == {"crash": 3, "one": 1, "two": 1, "three": 1}, run.describe()
    return project, run, counts


@pytest.mark.parametrize("mode", ["fork2", "spawn2"])
def test_crash_reruns_exhausted_like_xdist(exhausted: tuple[Path, Run, dict], mode: str) -> None:
    """``--reruns 2`` and a test that crashes every time (or crashes, then fails): two reruns,
    then its failure, as with pytest-xdist; a crash uses up one of the test's reruns as a
    failure does."""
    project, xdist_run, xdist_counts = exhausted
    run, counts = _run(project, mode, "", "--reruns", "2", *RERUN_SUMMARY)
    _assert_like_xdist(run, counts, xdist_run, xdist_counts)
