"""pytest-benchmark: the ``benchmark`` fixture, its terminal table and ``--benchmark-json``.

The timings differ from run to run; what must not differ is which benchmarks the table and the
JSON file hold, their groups, and the outcomes. (Issue 15 §1: with --agents the table and the
JSON file used to vanish.) Tests that are not benchmarks run on the agents as usual.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    Run,
    assert_same_outcomes,
    run_pytest,
    write_files,
)

ARGS = (
    "--benchmark-min-rounds=3",
    "--benchmark-max-time=0.01",
    "--benchmark-warmup=off",
    "--benchmark-columns=min,max,rounds",
    "--benchmark-sort=name",
)

PROJECT = {
    "test_speed.py": """
        import pytest


        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)


        def test_fib_10(benchmark):
            assert benchmark(fib, 10) == 55


        def test_fib_15(benchmark):
            assert benchmark(fib, 15) == 610


        @pytest.mark.benchmark(group="sorting")
        @pytest.mark.parametrize("size", [10, 100])
        def test_sort(benchmark, size):
            data = list(range(size, 0, -1))
            assert benchmark(sorted, data)[0] == 1


        def test_pedantic(benchmark):
            benchmark.pedantic(sum, args=(range(100),), rounds=4, iterations=2)


        @pytest.mark.parametrize("n", range(4))
        def test_not_a_benchmark(n):
            assert fib(n + 5) > n


        def test_broken_benchmark(benchmark):
            benchmark(lambda: 1 / 0)
    """,
}

TABLE = {
    "": {"test_fib_10", "test_fib_15", "test_pedantic"},
    "sorting": {"test_sort[10]", "test_sort[100]"},
}
_ROW = re.compile(r"^(test_\S+)\s+\d")


def table(run: Run) -> dict[str, set[str]]:
    """The benchmark tables of the terminal: the benchmarks listed under each group header."""
    groups: dict[str, set[str]] = {}
    group = None
    for line in run.lines:
        header = re.match(r"^-+ benchmark(?: '([^']*)')?: \d+ tests? -+$", line)
        if header:
            group = header.group(1) or ""
            groups[group] = set()
        elif group is not None and (row := _ROW.match(line)):
            groups[group].add(row.group(1))
        elif line.startswith("Legend:"):
            group = None
    return groups


Document = dict[str, tuple[str | None, int]]


def json_benchmarks(path: Path) -> Document:
    """name → (group, rounds) of a ``--benchmark-json`` file; rounds only where fixed
    (``benchmark.pedantic``), 0 elsewhere (calibrated from the timings)."""
    document = json.loads(path.read_text())
    return {
        b["name"]: (b["group"], b["stats"]["rounds"] if b["name"] == "test_pedantic" else 0)
        for b in document["benchmarks"]
    }


def _run(project: Path, mode: str) -> tuple[Run, Document | None]:
    output = project.parent / f"{project.name}-{mode}.json"
    run = run_pytest(project, mode, *ARGS, f"--benchmark-json={output}")
    return run, (json_benchmarks(output) if output.exists() else None)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("benchmark"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> tuple[Run, Document | None]:
    run, document = _run(project, "plain")
    assert run.summary == "1 failed, 9 passed", run.describe()
    assert table(run) == TABLE, run.describe()
    assert document == {
        "test_fib_10": (None, 0),
        "test_fib_15": (None, 0),
        "test_pedantic": (None, 4),
        "test_sort[10]": ("sorting", 0),
        "test_sort[100]": ("sorting", 0),
    }, document
    return run, document


@pytest.fixture(scope="module")
def runs(project: Path) -> dict[str, tuple[Run, Document | None]]:
    """One run per mode, shared by the outcome test and the product test."""
    return {}


def _mode_run(
    project: Path, runs: dict[str, tuple[Run, Document | None]], mode: str
) -> tuple[Run, Document | None]:
    if mode not in runs:
        runs[mode] = _run(project, mode)
    return runs[mode]


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_benchmark_outcomes_same_as_plain(
    project: Path,
    plain: tuple[Run, Document | None],
    runs: dict[str, tuple[Run, Document | None]],
    mode: str,
) -> None:
    run, _ = _mode_run(project, runs, mode)
    assert_same_outcomes(plain[0], run)


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_benchmark_table_and_json_same_as_plain(
    project: Path,
    plain: tuple[Run, Document | None],
    runs: dict[str, tuple[Run, Document | None]],
    mode: str,
) -> None:
    run, document = _mode_run(project, runs, mode)
    assert table(run) == TABLE, run.describe()
    assert document == plain[1], run.describe()
