"""pytest-html: every test in the report, with its result, captured log and extras.

The report keeps its data as JSON in the page (``data-jsonblob``); that is what is compared,
less the durations.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    Run,
    assert_same_outcomes,
    run_pytest,
    write_files,
)

PROJECT = {
    "conftest.py": """
        def pytest_html_report_title(report):
            report.title = "ecosystem report"
    """,
    "test_report.py": """
        import logging
        import sys

        import pytest
        import pytest_html


        def test_passes():
            print("to stdout")


        def test_fails():
            print("before the failure")
            logging.getLogger("eco").warning("logged warning")
            assert 1 + 1 == 3


        def test_with_extras(extras):
            extras.append(pytest_html.extras.text("some text", name="notes"))
            extras.append(pytest_html.extras.url("https://example.invalid/", name="link"))


        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass


        @pytest.mark.xfail(reason="known")
        def test_xfails():
            assert False


        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")


        def test_setup_error(broken):
            pass


        @pytest.mark.parametrize("n", range(3))
        def test_param(n):
            sys.stderr.write(f"param {n}\\n")
    """,
}

_VOLATILE = re.compile(r"\d+ ms|\d+:\d+:\d+|\d+\.\d+ ?s\b")


def report_tests(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The report's tests: node id → its result entries, durations removed."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r'data-jsonblob="([^"]*)"', text)
    assert match, "no data-jsonblob in the report"
    data = json.loads(html.unescape(match.group(1)))
    tests: dict[str, list[dict[str, Any]]] = {}
    for nodeid, entries in data["tests"].items():
        cleaned = []
        for entry in entries:
            entry = {key: value for key, value in entry.items() if key != "duration"}
            entry["resultsTableRow"] = [
                _VOLATILE.sub("?", cell) for cell in entry["resultsTableRow"]
            ]
            entry["log"] = re.sub(r"0x[0-9a-f]+", "0x?", entry["log"])
            cleaned.append(entry)
        tests[nodeid] = sorted(cleaned, key=json.dumps)
    return tests


def report_counts(path: Path) -> str:
    """The run count and the outcome filters of the report's summary (``3 Passed`` ...)."""
    text = path.read_text(encoding="utf-8")
    count = re.search(r'<p class="run-count">(\d+) tests? took', text)
    assert count, "no run count in the report"
    title = re.search(r'<h1 id="title">([^<]*)</h1>', text)
    filters = re.findall(r'<span class="([a-z]+)">(\d+) \w+', text)
    return f"{count.group(1)} tests; {title.group(1) if title else None}; {sorted(filters)}"


def _run(project: Path, mode: str) -> tuple[Run, Path]:
    report = project.parent / f"{project.name}-{mode}.html"
    run = run_pytest(project, mode, f"--html={report}", "--self-contained-html")
    return run, report


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("html"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> tuple[Run, Path]:
    run, report = _run(project, "plain")
    assert run.summary == "1 failed, 5 passed, 1 skipped, 1 xfailed, 1 error", run.describe()
    tests = report_tests(report)
    assert len(tests) == 9, tests
    # pytest-html counts the tests that ran (not the skipped and xfailed ones) in its run count.
    assert report_counts(report).startswith("7 tests; ecosystem report;"), report_counts(report)
    with_extras = tests["test_report.py::test_with_extras"][0]["extras"]
    assert {extra["name"] for extra in with_extras} == {"notes", "link"}, with_extras
    return run, report


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_html_report_same_as_plain(project: Path, plain: tuple[Run, Path], mode: str) -> None:
    plain_run, plain_report = plain
    run, report = _run(project, mode)
    assert_same_outcomes(plain_run, run)
    assert report.exists(), run.describe()
    assert report_counts(report) == report_counts(plain_report)
    assert report_tests(report) == report_tests(plain_report)
