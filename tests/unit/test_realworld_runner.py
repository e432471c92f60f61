"""The pure parts of realworld/run.py: JUnit parsing, the summary line, the comparison."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "realworld" / "run.py"


@pytest.fixture(scope="module")
def rw() -> ModuleType:
    spec = importlib.util.spec_from_file_location("realworld_run", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6">
<testcase classname="tests.test_a" name="test_ok" time="0.001" />
<testcase classname="tests.test_a" name="test_bad[1-x]" time="0.001">
  <failure message="assert 1 == 2&#10;second line">Traceback ...</failure></testcase>
<testcase classname="tests.test_a.TestK" name="test_skip" time="0.000">
  <skipped type="pytest.skip" message="no network">skip</skipped></testcase>
<testcase classname="tests.test_a.TestK" name="test_xf" time="0.000">
  <skipped type="pytest.xfail" message="known" /></testcase>
<testcase classname="tests.test_a" name="test_teardown" time="0.001">
  <failure message="boom" /><error message="failed on teardown with &quot;E&quot;" /></testcase>
<testcase classname="tests.test_a" name="test_ok" time="0.001" />
</testsuite></testsuites>
"""


def test_parse_junit_outcomes_keys_and_messages(rw: ModuleType) -> None:
    cases = rw.parse_junit_text(JUNIT)
    assert [(c.key, c.outcome) for c in cases] == [
        ("tests.test_a::test_ok", "passed"),
        ("tests.test_a::test_bad[1-x]", "failed"),
        ("tests.test_a.TestK::test_skip", "skipped"),
        ("tests.test_a.TestK::test_xf", "xfailed"),
        ("tests.test_a::test_teardown", "failed+error"),
        ("tests.test_a::test_ok", "passed"),
    ]
    assert cases[1].message == "assert 1 == 2"
    assert cases[2].message == "no network"
    assert cases[0].message == ""


def test_parse_junit_missing_or_broken_file(rw: ModuleType, tmp_path: Path) -> None:
    assert rw.parse_junit(tmp_path / "absent.xml") is None
    broken = tmp_path / "broken.xml"
    broken.write_text("<testsuites><testcase", encoding="utf-8")
    assert rw.parse_junit(broken) is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("...\n12 passed, 3 skipped in 1.23s\n", "12 passed, 3 skipped"),
        ("== 1 failed, 2 passed, 1 warning in 0.50s ==", "1 failed, 2 passed, 1 warning"),
        ("5 passed in 75.02s (0:01:15)\n\n", "5 passed"),
        ("\x1b[32m3 passed\x1b[0m\x1b[32m in 0.01s\x1b[0m", "3 passed"),
        ("no tests ran in 0.01s", "no tests ran"),
        (
            "2 passed, 1 deselected, 4 subtests passed in 9s",
            "2 passed, 1 deselected, 4 subtests passed",
        ),
        # the last summary line counts, not a test's output that looks like one
        ("3 passed in 1.00s\n------ parallel agents\n4 passed in 2.00s", "4 passed"),
        ("collecting ... interrupted\n", None),
        ("the time in 3s", None),
    ],
)
def test_summary_line(rw: ModuleType, output: str, expected: str | None) -> None:
    assert rw.summary_line(output) == expected


def _cases(rw: ModuleType, *pairs: tuple[str, str]) -> list[object]:
    return [
        rw.Case(key, outcome, f"msg {key}" if outcome != "passed" else "") for key, outcome in pairs
    ]


def test_compare_equal_runs_in_another_order(rw: ModuleType) -> None:
    plain = _cases(rw, ("a::t1", "passed"), ("a::t2", "failed"), ("b::t3", "skipped"))
    assert rw.compare(plain, list(reversed(plain))) == []


def test_compare_changed_missing_extra_and_duplicated(rw: ModuleType) -> None:
    plain = _cases(
        rw, ("a::t1", "passed"), ("a::t2", "passed"), ("a::t3", "failed"), ("a::t4", "passed")
    )
    other = _cases(
        rw,
        ("a::t1", "failed"),  # changed
        ("a::t3", "failed"),  # same
        ("a::t4", "passed"),
        ("a::t4", "passed"),  # reported twice
        ("a::t5", "error"),  # not in the plain run
    )  # a::t2 is missing
    diffs = rw.compare(plain, other)
    assert [(d.key, d.plain, d.other, d.message) for d in diffs] == [
        ("a::t1", "passed", "failed", "msg a::t1"),
        ("a::t2", "passed", "missing", ""),
        ("a::t4", "passed", "passed x2", ""),
        ("a::t5", "missing", "error", "msg a::t5"),
    ]


def test_compare_message_falls_back_to_the_plain_run(rw: ModuleType) -> None:
    plain = _cases(rw, ("a::t", "failed"))
    other = _cases(rw, ("a::t", "passed"))
    (diff,) = rw.compare(plain, other)
    assert (diff.plain, diff.other, diff.message) == ("failed", "passed", "msg a::t")


def test_table_and_details(rw: ModuleType) -> None:
    project = rw.Project("demo", "1.0", deps=())
    outcome = rw.Outcome(rc=1, wall=2.0, timed_out=False, leftovers=0, output="")
    plain = rw.Run(
        "plain",
        outcome,
        _cases(rw, ("a::t1", "passed"), ("a::t2", "failed")),
        "1 failed, 1 passed",
        "cmd",
    )
    same = rw.Run("agents2", outcome, list(plain.cases), "1 failed, 1 passed", "cmd2")
    other = rw.Run("agents4", outcome, _cases(rw, ("a::t1", "passed")), "1 passed", "cmd4")
    result = rw.Result(project, {"plain": plain, "agents2": same, "agents4": other})
    variants = ["plain", "agents2", "agents4"]
    text = rw.table([result], variants)
    assert "| demo 1.0 | 2 | 0 / 1 | y / n | 2.0 / 2.0 / 2.0 |" in text
    log, differing = rw.details([result], variants)
    assert differing == 1
    assert "a::t2" in log and "plain: failed    agents4: missing" in log
    assert "summary: plain '1 failed, 1 passed' (exit 1) vs '1 passed' (exit 1)" in log
