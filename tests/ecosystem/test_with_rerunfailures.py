"""pytest-rerunfailures: reruns of flaky tests (``--reruns``, the ``flaky`` marker), and the
rerun of a test that crashed its process (pytest-xdist's worker; here the agent).

Each test counts its attempts in a file, so the comparison covers how often it ran, not only
the outcome and the ``N rerun`` count of the summary line.
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


@pytest.fixture(scope="module")
def xdist(crashing: Path) -> tuple[Run, dict]:
    """The reference for a crash: pytest-xdist's workers (a plain run cannot survive it)."""
    run, counts = _run(crashing, "plain", "-xdist", "--reruns", "1", pytest_args=("-n", "2"))
    if run.summary == "1 failed, 3 passed":
        # rerunfailures learns of a crashed xdist worker over a socket; now and then the
        # replacement worker runs on before it has, and the crash is not rerun.
        pytest.skip("pytest-xdist's own crash rerun did not happen this time: no reference")
    assert run.summary == "4 passed, 1 rerun", run.describe()
    assert counts == {"crash": 2, "one": 1, "two": 1, "three": 1}, counts
    return run, counts


@pytest.mark.xfail(
    strict=True,
    reason="issue 15: a test that killed its agent is retried by the plugin "
    "(--agents-retries), not counted as a pytest-rerunfailures rerun",
)
@pytest.mark.parametrize("mode", ["fork2", "spawn2"])
def test_crash_rerun_like_xdist(crashing: Path, xdist: tuple[Run, dict], mode: str) -> None:
    """A test that kills its process once is rerun, and counted as a rerun, as rerunfailures
    does for a crashed pytest-xdist worker."""
    xdist_run, xdist_counts = xdist
    run, counts = _run(crashing, mode, "", "--reruns", "1")
    assert_parallel(run)
    context = xdist_run.describe() + "\n" + run.describe()
    assert run.returncode == xdist_run.returncode, context
    assert counts == xdist_counts, context
    # (pytest-xdist's own JUnit XML has a nameless extra <testcase/> for the crash.)
    expected = Counter({case: n for case, n in xdist_run.junit.items() if case[1]})
    assert run.junit == expected, context
    assert run.summary == xdist_run.summary, context
