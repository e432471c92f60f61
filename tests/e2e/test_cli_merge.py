"""``pytest-parallel-agents merge``, end to end: shards of a real run merged into one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import pytest_parallel_agents

# One file per shard; between them every kind of outcome, a teardown error among them.
PROJECT = {
    "test_alpha": """
        import pytest

        def test_pass():
            print("some output")

        def test_fail():
            assert 1 == 2

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_param(n):
            assert n
        """,
    "test_beta": """
        import pytest

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown")

        def test_call_and_teardown(broken_teardown):
            assert False

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        def test_property(record_property):
            record_property("answer", 42)
        """,
    "test_gamma": """
        import pytest

        @pytest.fixture
        def broken_setup():
            raise RuntimeError("setup")

        def test_setup_error(broken_setup):
            pass

        @pytest.mark.xfail(reason="fixed")
        def test_xpass():
            pass

        class TestGroup:
            def test_one(self):
                pass

            def test_two(self):
                pass
        """,
}
SHARDS = tuple(PROJECT)
COUNT_KEYS = ("tests", "passed", "failed", "skipped", "errors", "xfailed", "xpassed")


def merge(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console script (``python -m pytest_parallel_agents``) in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_parallel_agents", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cases(path: Path) -> Counter[tuple[str, str, str]]:
    """The test cases of a JUnit file as a multiset of (classname, name, outcome)."""
    found: Counter[tuple[str, str, str]] = Counter()
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = next(
            (tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None),
            "passed",
        )
        found[(case.get("classname", ""), case.get("name", ""), outcome)] += 1
    return found


def suite_of(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    return suite


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    context = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 4, context
    assert "Traceback" not in result.stderr, context
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, context
    for fragment in fragments:
        assert fragment in errors[0], context


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    for name, source in PROJECT.items():
        pytester.makepyfile(**{name: textwrap.dedent(source)})
    return pytester


def run_shards(pytester: pytest.Pytester, root: str = "shards") -> list[Path]:
    """Run each test file as one shard writing junit, durations and metrics to its folder."""
    folders = []
    for number, name in enumerate(SHARDS, start=1):
        folder = pytester.path / root / f"shard{number}"
        folder.mkdir(parents=True)
        pytester.runpytest(
            "-p",
            "no:randomly",
            "-o",
            "junit_logging=all",
            f"{name}.py",
            f"--junitxml={folder / 'junit.xml'}",
            "--agents-store-durations",
            f"--agents-durations={folder / '.test_durations'}",
            f"--agents-metrics={folder / 'metrics.json'}",
        )
        for artifact in ("junit.xml", ".test_durations", "metrics.json"):
            assert (folder / artifact).is_file(), f"{folder / artifact} was not written"
        folders.append(folder)
    return folders


@pytest.fixture(scope="module")
def _shard_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shard-cache")


@pytest.fixture
def shards(project: pytest.Pytester, _shard_cache: Path) -> list[Path]:
    """The three shards' artifacts: run once per module, then copied into each project."""
    cached = _shard_cache / "shards"
    if not cached.exists():
        run_shards(project)
        shutil.copytree(project.path / "shards", cached)
    else:
        shutil.copytree(cached, project.path / "shards")
    return [project.path / "shards" / f"shard{n}" for n in range(1, len(SHARDS) + 1)]


def test_merged_shards_match_a_full_run(project: pytest.Pytester, shards: list[Path]) -> None:
    full = project.path / "full"
    full.mkdir()
    project.runpytest(
        "-p",
        "no:randomly",
        "-o",
        "junit_logging=all",
        f"--junitxml={full / 'junit.xml'}",
        "--agents-store-durations",
        f"--agents-durations={full / '.test_durations'}",
        f"--agents-metrics={full / 'metrics.json'}",
    )
    result = merge(project.path, "merge", *(str(s) for s in shards), "--out", "merged")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = project.path / "merged"
    assert "merged 3 JUnit XML files" in result.stdout
    assert "merged 3 durations files" in result.stdout
    assert "merged 3 metrics files" in result.stdout
    for name in ("junit.xml", ".test_durations", "metrics.json"):
        assert str(Path("merged") / name) in result.stdout

    # JUnit: the same cases and outcomes as the full run, the same counts, shard order kept.
    merged_xml = out / "junit.xml"
    assert cases(merged_xml) == cases(full / "junit.xml")
    root = ET.parse(merged_xml).getroot()
    assert root.tag == "testsuites"
    assert len(root.findall("testsuite")) == 1
    merged_suite, full_suite = suite_of(merged_xml), suite_of(full / "junit.xml")
    for attribute in ("name", "tests", "failures", "errors", "skipped", "hostname"):
        assert merged_suite.get(attribute) == full_suite.get(attribute), attribute
    shard_suites = [suite_of(s / "junit.xml") for s in shards]
    assert float(merged_suite.get("time", "")) == pytest.approx(
        sum(float(s.get("time", "")) for s in shard_suites), abs=0.002
    )
    assert merged_suite.get("timestamp") == shard_suites[0].get("timestamp")
    classnames = [c.get("classname") for c in merged_suite.iter("testcase")]
    assert classnames == sorted(classnames, key=lambda c: SHARDS.index(str(c).split(".")[0]))
    # Children verbatim: the property and the captured output survive.
    prop = merged_suite.find("testcase[@name='test_property']/properties/property")
    assert prop is not None and prop.attrib == {"name": "answer", "value": "42"}
    out_text = merged_suite.findtext("testcase[@name='test_pass']/system-out") or ""
    assert "some output" in out_text
    teardown = [
        c for c in merged_suite.iter("testcase") if c.get("name") == "test_call_and_teardown"
    ]
    assert [c[0].tag for c in teardown] == ["failure", "error"]

    # Durations: the union of the shards', sorted, indent 2; the full run's node ids.
    shard_durations: dict[str, float] = {}
    for shard in shards:
        shard_durations.update(read_json(shard / ".test_durations"))
    durations_text = (out / ".test_durations").read_text(encoding="utf-8")
    assert read_json(out / ".test_durations") == shard_durations
    assert durations_text == json.dumps(dict(sorted(shard_durations.items())), indent=2) + "\n"
    assert set(shard_durations) == set(read_json(full / ".test_durations"))

    # Metrics: totals summed (the wall the longest shard's), every shard kept as it was.
    metrics = read_json(out / "metrics.json")
    shard_metrics = [read_json(s / "metrics.json") for s in shards]
    full_totals = read_json(full / "metrics.json")["totals"]
    assert metrics["schema"] == 2
    assert metrics["mode"] == "merged"
    assert metrics["shards"] == shard_metrics
    totals = metrics["totals"]
    assert totals["shards"] == 3
    for key in (*COUNT_KEYS, "restarts", "retries"):
        assert totals[key] == sum(m["totals"][key] for m in shard_metrics), key
        assert totals[key] == full_totals[key], key
    assert totals["wall_seconds"] == max(m["totals"]["wall_seconds"] for m in shard_metrics)
    assert totals["collect_seconds"] == pytest.approx(
        sum(m["totals"]["collect_seconds"] for m in shard_metrics)
    )


def test_a_directory_is_searched_and_artifacts_recognised_by_content(
    project: pytest.Pytester, shards: list[Path]
) -> None:
    # Odd names for the artifacts of shard 2; files that are none of them beside them.
    (shards[1] / "junit.xml").rename(shards[1] / "report.txt")
    (shards[1] / ".test_durations").rename(shards[1] / "times")
    (shards[1] / "metrics.json").rename(shards[1] / "run-info")
    (shards[0] / "README").write_text("not an artifact\n")
    (shards[0] / "coverage.xml").write_text('<?xml version="1.0" ?><coverage/>')
    (shards[0] / "package.json").write_text('{"name": "x", "version": "1"}')
    (shards[0] / "empty.bin").write_bytes(b"")
    (shards[2] / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")

    result = merge(project.path, "merge", "shards", "--out", "merged")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the non-artifacts are ignored silently
    assert "merged 3 JUnit XML files" in result.stdout
    assert "merged 3 durations files" in result.stdout
    assert "merged 3 metrics files" in result.stdout
    out = project.path / "merged"
    expected: Counter[tuple[str, str, str]] = Counter()
    for shard, name in zip(shards, ("junit.xml", "report.txt", "junit.xml"), strict=True):
        expected += cases(shard / name)
    assert cases(out / "junit.xml") == expected
    assert read_json(out / "metrics.json")["totals"]["shards"] == 3


def test_naming_a_file_twice_or_through_its_directory_merges_it_once(
    project: pytest.Pytester, shards: list[Path]
) -> None:
    junit = str(shards[0] / "junit.xml")
    result = merge(project.path, "merge", junit, str(shards[0]), junit, "--out", "merged")
    assert result.returncode == 0, result.stderr
    assert "merged 1 JUnit XML file " in result.stdout
    assert cases(project.path / "merged" / "junit.xml") == cases(shards[0] / "junit.xml")


def test_corrupt_inputs_are_named_skipped_and_untouched(
    project: pytest.Pytester, shards: list[Path]
) -> None:
    truncated = shards[1] / "junit.xml"
    truncated.write_bytes(truncated.read_bytes()[:200])
    bad_durations = project.path / "bad.durations"
    bad_durations.write_text('{"test_alpha.py::test_pass": "slow"}')
    not_json = shards[2] / "metrics.json"
    not_json.write_text('{"schema": 1, "totals": ')
    stranger = project.path / "notes.txt"
    stranger.write_text("hello\n")
    corrupt = (truncated, bad_durations, not_json, stranger)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in corrupt}

    result = merge(
        project.path, "merge", "shards", str(bad_durations), str(stranger), "--out", "merged"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 4, result.stderr
    for path in corrupt:
        assert sum(str(path.relative_to(project.path)) in w for w in warnings) == 1, path
    assert all(w.startswith("WARNING:") for w in warnings)
    assert "4 files skipped" in result.stdout
    assert "merged 2 JUnit XML files" in result.stdout
    assert "merged 3 durations files" in result.stdout
    assert "merged 2 metrics files" in result.stdout
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in corrupt} == before
    out = project.path / "merged"
    assert cases(out / "junit.xml") == cases(shards[0] / "junit.xml") + cases(
        shards[2] / "junit.xml"
    )


def test_latest_durations_file_wins_a_conflict(pytester: pytest.Pytester) -> None:
    old, new = pytester.path / "a" / "old.json", pytester.path / "b" / "new.json"
    old.parent.mkdir()
    new.parent.mkdir()
    old.write_text('{"t.py::a": 9.0, "t.py::b": 1.0}')
    new.write_text('[["t.py::a", 0.5], ["t.py::c", 2]]')  # pytest-split's legacy format
    os.utime(old, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    os.utime(new, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    result = merge(pytester.path, "merge", str(new), str(old), "--out", "out")
    assert result.returncode == 0, result.stderr
    assert read_json(pytester.path / "out" / ".test_durations") == {
        "t.py::a": 9.0,
        "t.py::b": 1.0,
        "t.py::c": 2.0,
    }
    os.utime(new, ns=(3_000_000_000_000_000_000, 3_000_000_000_000_000_000))
    result = merge(pytester.path, "merge", str(new), str(old), "--out", "out")
    assert result.returncode == 0, result.stderr
    assert read_json(pytester.path / "out" / ".test_durations")["t.py::a"] == 0.5
    # Only the outputs with inputs are written.
    assert sorted(p.name for p in (pytester.path / "out").iterdir()) == [".test_durations"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["merge"], ["no PATH given"]),
        (["merge", "--out", "out"], ["no PATH given"]),
        (["merge", "missing-dir", "--out", "out"], ["missing-dir", "does not exist"]),
        (["merge", "data"], ["--out"]),
        (["merge", "data", "--out", "afile"], ["--out afile", "not a directory"]),
        (
            ["merge", "nothing", "--out", "out"],
            ["no JUnit XML, durations, metrics, events or coverage data files"],
        ),
        (["merge", "data", "--out", "out", "--bogus"], ["--bogus"]),
        ([], ["no command"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_usage_errors_exit_4_with_one_line(
    pytester: pytest.Pytester, args: list[str], fragments: list[str]
) -> None:
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "d.json").write_text('{"t.py::a": 1}')
    (pytester.path / "nothing").mkdir()
    (pytester.path / "nothing" / "README").write_text("hi\n")
    (pytester.path / "afile").write_text("x")
    result = merge(pytester.path, *args)
    assert_usage_error(result, *fragments)
    assert result.stdout == ""
    assert not (pytester.path / "out").exists()


def test_an_output_that_is_an_input_is_refused(
    project: pytest.Pytester, shards: list[Path]
) -> None:
    first = merge(project.path, "merge", "shards", "--out", "shards/merged")
    assert first.returncode == 0, first.stderr
    outputs = [project.path / "shards" / "merged" / n for n in ("junit.xml", "metrics.json")]
    before = [p.read_bytes() for p in outputs]
    again = merge(project.path, "merge", "shards", "--out", "shards/merged")
    assert_usage_error(again, "shards/merged/", "overwritten")
    assert [p.read_bytes() for p in outputs] == before
    # Named explicitly, through another spelling of the same path.
    explicit = merge(
        project.path, "merge", "shards/shard1/junit.xml", "--out", "shards/shard2/../shard1"
    )
    assert_usage_error(explicit, "shards/shard1/junit.xml", "overwritten")


def test_only_durations_writes_only_durations_and_creates_the_directory(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "one.json").write_text('{"b::t": 2, "a::t": 1}')
    result = merge(pytester.path, "merge", "one.json", "--out", "deep/er/out")
    assert result.returncode == 0, result.stderr
    out = pytester.path / "deep" / "er" / "out"
    assert sorted(p.name for p in out.iterdir()) == [".test_durations"]
    assert (out / ".test_durations").read_text() == '{\n  "a::t": 1.0,\n  "b::t": 2.0\n}\n'
    assert "junit.xml" not in result.stdout
    assert "merged 1 durations file (2 tests)" in result.stdout


def test_shard_keys_that_leave_gaps_are_warned_about(pytester: pytest.Pytester) -> None:
    for index in (0, 2):
        document = {"schema": 1, "mode": "in-process", "totals": {"tests": 1}, "suites": {}}
        document["shard"] = {"index": index, "count": 4}
        (pytester.path / f"m{index}.json").write_text(json.dumps(document))
    result = merge(pytester.path, "merge", ".", "--out", "out")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "WARNING: metrics of only 2 of 4 shards found"
    assert read_json(pytester.path / "out" / "metrics.json")["totals"]["tests"] == 2


def test_help_and_version(pytester: pytest.Pytester) -> None:
    top = merge(pytester.path, "--help")
    assert top.returncode == 0
    assert "merge" in top.stdout
    sub = merge(pytester.path, "merge", "--help")
    assert sub.returncode == 0
    assert "--out DIR" in sub.stdout
    assert "PATH" in sub.stdout
    version = merge(pytester.path, "--version")
    assert version.returncode == 0
    assert version.stdout.strip().endswith(pytest_parallel_agents.__version__)


def test_the_installed_console_script_runs(pytester: pytest.Pytester) -> None:
    script = Path(sys.executable).parent / "pytest-parallel-agents"
    if not script.exists():
        pytest.skip("the console script is not installed beside this interpreter")
    result = subprocess.run(
        [str(script), "merge", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "merge" in result.stdout
