"""Coverage end to end: the combined data equals a sequential ``coverage run`` of the same tests."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from coverage import CoverageData
from helpers import QUIET_PLUGINS, read_metrics, write_files
from sshd import SshServer

# A package with module-level code, branches, classes, a module only the integration suite
# imports (inside its tests), and a module no test imports.
PACKAGE = {
    "samplepkg/__init__.py": '''
        """Module-level code runs at import: those lines count too."""
        import os

        MODE = os.environ.get("SAMPLE_MODE", "plain")
        if MODE == "plain":
            GREETING = "hello"
        else:
            GREETING = "hi"


        def greet(name):
            return f"{GREETING}, {name}"
    ''',
    "samplepkg/shapes.py": """
        import math


        class Shape:
            def area(self):
                raise NotImplementedError

            def describe(self):
                size = self.area()
                if size > 100:
                    return "big"
                elif size > 10:
                    return "medium"
                return "small"


        class Square(Shape):
            def __init__(self, side):
                if side < 0:
                    raise ValueError("negative side")
                self.side = side

            def area(self):
                return self.side * self.side


        class Circle(Shape):
            def __init__(self, radius):
                self.radius = radius

            def area(self):
                return math.pi * self.radius**2


        def classify(n):
            out = []
            for i in range(n):
                if i % 15 == 0:
                    out.append("fizzbuzz")
                elif i % 3 == 0:
                    out.append("fizz")
                elif i % 5 == 0:
                    out.append("buzz")
                else:
                    out.append(str(i))
            return out
    """,
    "samplepkg/rare.py": """
        def lookup(key, cache):
            if key in cache:
                return cache[key]
            value = key * 2
            cache[key] = value
            return value


        def never_called():
            return 42
    """,
    "samplepkg/unused.py": """
        def nobody():
            x = 1
            return x
    """,
    "tests/__init__.py": "",
    "tests/unit/__init__.py": "",
    "tests/unit/test_shapes.py": """
        import pytest
        from samplepkg import greet
        from samplepkg.shapes import Square, classify


        @pytest.mark.parametrize("side", [1, 4, 20])
        def test_square(side):
            assert Square(side).area() == side * side


        def test_square_describe():
            assert Square(20).describe() == "big"
            assert Square(2).describe() == "small"


        def test_negative():
            with pytest.raises(ValueError):
                Square(-1)


        @pytest.mark.parametrize("n", range(8))
        def test_classify(n):
            assert len(classify(n)) == n


        def test_greet():
            assert greet("x").endswith("x")
    """,
    "tests/integration/__init__.py": "",
    "tests/integration/test_rare.py": """
        import pytest


        @pytest.mark.parametrize("key", [1, 2, 3, 4])
        def test_lookup(key):
            from samplepkg.rare import lookup

            cache = {}
            assert lookup(key, cache) == key * 2
            assert lookup(key, cache) == key * 2


        def test_circle():
            from samplepkg.shapes import Circle

            assert Circle(1).describe() == "small"
    """,
}
PYPROJECT_BRANCH = """
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.coverage.run]
branch = true
"""
# The integration agent dies here after finishing test_rare.py: rare.py is covered only
# by tests that ran on the agent that died.
CRASH = """
import os


def test_dies():
    os._exit(3)
"""
CRASH_ID = "tests/integration/test_zz_crash.py::test_dies"


def _project(pytester: pytest.Pytester, config: dict[str, str] | None = None) -> Path:
    write_files(pytester.path, PACKAGE)
    default = {"pyproject.toml": PYPROJECT_BRANCH}
    write_files(pytester.path, config if config is not None else default)
    return pytester.path


def _pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "pytest", *QUIET_PLUGINS, *args, timeout=120)


def _sequential(root: Path) -> Any:
    """The reference: ``coverage run --source=samplepkg -m pytest`` of the project, as JSON."""
    data, out = root / ".coverage-sequential", root / "sequential.json"
    for command in (
        ["run", f"--data-file={data}", "--source=samplepkg", "-m", "pytest", *QUIET_PLUGINS],
        ["json", f"--data-file={data}", "-o", str(out)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "coverage", *command],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    data.unlink()
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sequential reference of the default project, computed once (paths are relative)."""
    root = tmp_path_factory.mktemp("sequential")
    write_files(root, PACKAGE)
    write_files(root, {"pyproject.toml": PYPROJECT_BRANCH})
    return _sequential(root)


def _covered(document: Any) -> dict[str, tuple[list[int], list[Any], list[Any]]]:
    """Per file: executed lines, executed branches, missing branches."""
    return {
        name: (
            sorted(entry["executed_lines"]),
            sorted(map(tuple, entry.get("executed_branches", []))),
            sorted(map(tuple, entry.get("missing_branches", []))),
        )
        for name, entry in document["files"].items()
    }


def _parallel_json(pytester: pytest.Pytester, *args: str, expect: int = 0) -> Any:
    out = pytester.path / "parallel.json"
    out.unlink(missing_ok=True)
    metrics = pytester.path / "metrics.json"
    result = _pytest(
        pytester,
        "--agents-cov",
        "samplepkg",
        f"--agents-cov-report=json:{out}",
        f"--agents-metrics={metrics}",
        *args,
    )
    assert result.ret == expect, result.stdout.str() + result.stderr.str()
    assert "Coverage JSON written to file" in result.stdout.str()
    return json.loads(out.read_text()), read_metrics(metrics), result


@pytest.mark.parametrize("agents", [1, 2, 4])
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_combined_coverage_equals_sequential(
    pytester: pytest.Pytester, reference: Any, start: str, agents: int
) -> None:
    _project(pytester)
    assert reference["meta"]["branch_coverage"] is True
    document, metrics, _ = _parallel_json(
        pytester,
        f"--agents={agents}",
        f"--agents-start={start}",
        "--agents-items=1",
        "--agents-min-items=1",
    )
    assert _covered(document) == _covered(reference)
    assert document["totals"]["percent_covered"] == reference["totals"]["percent_covered"]
    # Import-time lines and the module no test imports are there, as in the reference.
    assert 4 in document["files"]["samplepkg/__init__.py"]["executed_lines"]
    assert document["files"]["samplepkg/unused.py"]["executed_lines"] == []
    if agents > 1:
        assert metrics["mode"] == "parallel"
        assert len(metrics["agents"]) >= 2
        assert all(a["coverage_save_seconds"] is not None for a in metrics["agents"])


def test_coveragerc_omit_and_lines_only(pytester: pytest.Pytester) -> None:
    """The user's .coveragerc is honoured: no branches, an omitted module, excluded lines."""
    _project(
        pytester,
        {
            "pytest.ini": "[pytest]\ntestpaths = tests\n",
            ".coveragerc": "[run]\nomit = */rare.py\n[report]\nexclude_lines =\n"
            "    raise NotImplementedError\n",
        },
    )
    reference = _sequential(pytester.path)
    document, _, _ = _parallel_json(pytester, "--agents=2")
    assert "samplepkg/rare.py" not in document["files"]
    assert document["meta"]["branch_coverage"] is False
    assert _covered(document) == _covered(reference)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_crashed_agent_keeps_its_coverage(
    pytester: pytest.Pytester, reference: Any, start: str
) -> None:
    # The reference ran the same tests without the one that kills its process.
    _project(pytester)
    write_files(pytester.path, {"tests/integration/test_zz_crash.py": CRASH})
    document, metrics, result = _parallel_json(
        pytester, "--agents=2", f"--agents-start={start}", "-p", "no:cacheprovider", expect=1
    )
    assert any(a["crashed"] for a in metrics["agents"]), metrics
    result.stdout.fnmatch_lines(["*1 failed, 19 passed*"])
    # rare.py's lines were measured only on the agent that died, before it died.
    assert _covered(document) == _covered(reference)


@pytest.mark.parametrize("crash", [False, True], ids=["clean", "crash"])
def test_remote_agents_ship_their_coverage(
    pytester: pytest.Pytester, reference: Any, sshd: SshServer, crash: bool
) -> None:
    """Agents on an ssh host (an rsync copy: other paths) send their data back; it is
    remapped to this checkout. A remote agent that dies keeps what it measured."""
    _project(pytester)
    if crash:
        write_files(pytester.path, {"tests/integration/test_zz_crash.py": CRASH})
    spec = sshd.spec(sys.executable)
    document, metrics, _ = _parallel_json(
        pytester,
        "--agents-tx",
        f"2*{spec}",
        "--agents-rsync",
        ".",
        "-p",
        "no:cacheprovider",
        expect=1 if crash else 0,
    )
    assert {a["host"] for a in metrics["agents"]} == {"ssh=agents-test"}
    assert any(a["crashed"] for a in metrics["agents"]) == crash
    assert _covered(document) == _covered(reference)


def test_three_shards_merged_equal_sequential(pytester: pytest.Pytester, reference: Any) -> None:
    _project(pytester)
    shards = pytester.path / "artifacts"
    for k in (1, 2, 3):
        result = _pytest(pytester, "--agents=2", f"--agents-shard={k}/3", "--agents-cov=samplepkg")
        assert result.ret == 0, result.stdout.str()
        (shards / f"shard-{k}").mkdir(parents=True)
        shutil.move(pytester.path / ".coverage", shards / f"shard-{k}" / ".coverage")
    merged = pytester.run(
        sys.executable,
        "-m",
        "pytest_parallel_agents",
        "merge",
        str(shards),
        "--out",
        "merged",
        "--cov-report=json:merged.json",
        "--cov-report=term",
    )
    assert merged.ret == 0, merged.stdout.str() + merged.stderr.str()
    merged.stdout.fnmatch_lines(["combined 3 coverage data files -> merged/.coverage", "TOTAL*"])
    assert (pytester.path / "merged" / ".coverage").is_file()
    document = json.loads((pytester.path / "merged.json").read_text())
    assert _covered(document) == _covered(reference)


def test_merge_keeps_inputs_and_skips_foreign_sqlite(pytester: pytest.Pytester) -> None:
    _project(pytester)
    assert _pytest(pytester, "--agents=2", "--agents-cov=samplepkg").ret == 0
    data = pytester.path / ".coverage"
    before = data.read_bytes()
    with sqlite3.connect(pytester.path / "other.coverage.db") as db:
        db.execute("create table t (x)")
    refused = pytester.run(
        sys.executable, "-m", "pytest_parallel_agents", "merge", str(data), "--out", "."
    )
    assert refused.ret == 4
    assert "would be overwritten" in refused.stderr.str()
    merged = pytester.run(
        sys.executable,
        "-m",
        "pytest_parallel_agents",
        "merge",
        str(data),
        "other.coverage.db",
        "--out",
        "out",
        "--cov-fail-under=99",
    )
    assert merged.ret == 1
    merged.stderr.fnmatch_lines(["WARNING: skipped other.coverage.db: an SQLite file that is not*"])
    merged.stdout.fnmatch_lines(
        ["FAIL Required test coverage of 99% not reached. Total coverage:*"]
    )
    assert data.read_bytes() == before


def test_pytest_cov_options_are_measured_by_the_agents(
    pytester: pytest.Pytester, reference: Any
) -> None:
    pytest.importorskip("pytest_cov")
    _project(pytester)
    out = pytester.path / "cov.json"
    result = _pytest(
        pytester, "--agents=2", "--cov=samplepkg", f"--cov-report=json:{out}", "--cov-report=term"
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "pytest-cov's --cov was measured in every agent (the same as --agents-cov=samplepkg)",
            "TOTAL*",
        ]
    )
    assert _covered(json.loads(out.read_text())) == _covered(reference)


def test_pytest_cov_report_without_equivalent_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_cov")
    _project(pytester)
    result = _pytest(pytester, "--agents=2", "--cov=samplepkg", "--cov-report=annotate")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: --cov-report=annotate has no equivalent with --agents*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_every_report_type(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = _pytest(
        pytester,
        "--agents=2",
        "--agents-cov=samplepkg",
        "--agents-cov-report=term-missing:skip-covered",
        "--agents-cov-report=html:cov-html",
        "--agents-cov-report=xml",
        "--agents-cov-report=lcov:out/cov.lcov",
    )
    assert result.ret == 0, result.stdout.str()
    root = pytester.path
    result.stdout.fnmatch_lines(
        [
            "*coverage (parallel agents)*",
            "Name*Stmts*Miss*Missing",
            "TOTAL*",
            f"Coverage HTML written to dir {root / 'cov-html'}",
            f"Coverage XML written to file {root / 'coverage.xml'}",
            f"Coverage LCOV written to file {root / 'out/cov.lcov'}",
        ]
    )
    assert (root / "cov-html" / "index.html").is_file()
    assert 'filename="shapes.py"' in (root / "coverage.xml").read_text()
    assert "SF:" in (root / "out/cov.lcov").read_text()


def test_fail_under(pytester: pytest.Pytester) -> None:
    _project(pytester)
    below = _pytest(pytester, "--agents=2", "--agents-cov=samplepkg", "--agents-cov-fail-under=95")
    assert below.ret == 1
    below.stdout.fnmatch_lines(
        ["FAIL Required test coverage of 95% not reached. Total coverage: *%"]
    )
    above = _pytest(pytester, "--agents=2", "--agents-cov=samplepkg", "--agents-cov-fail-under=50")
    assert above.ret == 0
    above.stdout.fnmatch_lines(["Required test coverage of 50% reached. Total coverage: *%"])


def test_test_contexts(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = _pytest(
        pytester,
        "--agents=2",
        "--agents-cov=samplepkg",
        "--agents-cov-context=test",
        "--agents-cov-report=",
    )
    assert result.ret == 0, result.stdout.str()
    data = CoverageData(str(pytester.path / ".coverage"))
    data.read()
    contexts = data.measured_contexts()
    assert "tests/unit/test_shapes.py::test_greet|run" in contexts
    assert "tests/integration/test_rare.py::test_lookup[3]|run" in contexts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agents-cov-fail-under=120"], "--agents-cov-fail-under expects a percentage*"),
        (["--agents-cov-report=pdf"], "--agents-cov-report: unknown report type 'pdf'*"),
        (["--agents-cov-report=term:out.txt"], "--agents-cov-report: term takes no destination*"),
        (["--agents-cov-config=missing.cfg"], "--agents-cov-config: no such file: missing.cfg"),
        (["--agents-cov-context=file"], "--agents-cov-context expects 'test', got 'file'"),
    ],
)
def test_bad_coverage_options(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    _project(pytester)
    result = _pytest(pytester, "--agents=2", "--agents-cov=samplepkg", *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
