"""Coverage options: our own, their ini twins, and pytest-cov's translated (pure, no I/O)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_parallel_agents.coverage.options import (
    REPORT_TYPES,
    CoverageOptionError,
    Report,
    combine_settings,
    from_pytest_cov,
    load_coverage_settings,
    parse_percent,
    parse_reports,
)


def _ns(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**values)


def _no_ini(name: str) -> Any:
    return [] if name in ("agents_cov", "agents_cov_report") else ""


def test_no_report_option_means_term_and_an_empty_one_means_none() -> None:
    assert parse_reports([], "--x") == (Report("term"),)
    assert parse_reports([""], "--x") == ()


def test_reports_with_destinations_and_modifiers() -> None:
    reports = parse_reports(
        ["term-missing:skip-covered", "xml:out/cov.xml", "html", "json:c.json", "lcov"], "--x"
    )
    assert reports == (
        Report("term-missing", "skip-covered"),
        Report("xml", "out/cov.xml"),
        Report("html"),
        Report("json", "c.json"),
        Report("lcov"),
    )
    assert [r.is_terminal for r in reports] == [True, False, False, False, False]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("pdf", "unknown report type 'pdf'"),
        ("term:file.txt", "term takes no destination"),
        ("term-missing:x", "term-missing takes no destination"),
    ],
)
def test_bad_reports(raw: str, message: str) -> None:
    with pytest.raises(CoverageOptionError, match=message):
        parse_reports([raw], "--agents-cov-report")


@given(st.lists(st.sampled_from(sorted(REPORT_TYPES)), min_size=1, max_size=12))
def test_one_report_per_type_the_last_destination_wins(kinds: list[str]) -> None:
    raw = [f"{k}:dest{i}" if REPORT_TYPES[k] else k for i, k in enumerate(kinds)]
    reports = parse_reports(raw, "--x")
    assert [r.kind for r in reports] == list(dict.fromkeys(kinds))
    for report in reports:
        last = max(i for i, k in enumerate(kinds) if k == report.kind)
        assert report.dest == (f"dest{last}" if REPORT_TYPES[report.kind] else None)


@pytest.mark.parametrize("raw", ["-1", "100.5", "lots", "nan"])
def test_bad_percentages(raw: str) -> None:
    with pytest.raises(CoverageOptionError, match="percentage from 0 to 100"):
        parse_percent(raw, "--agents-cov-fail-under")


def test_settings_from_options() -> None:
    settings = load_coverage_settings(
        _ns(
            agents_cov=["pkg", "other", "pkg"],
            agents_cov_report=["xml:c.xml"],
            agents_cov_fail_under="80.5",
            agents_cov_branch=True,
            agents_cov_context="test",
            agents_cov_append=False,
        ),
        _no_ini,
    )
    assert settings is not None
    assert settings.sources == ("pkg", "other")
    assert settings.reports == (Report("xml", "c.xml"),)
    assert settings.fail_under == 80.5
    assert settings.branch is True
    assert settings.test_context
    assert settings.config_file is True


def test_no_source_value_means_the_configurations_source() -> None:
    settings = load_coverage_settings(_ns(agents_cov=[""]), _no_ini)
    assert settings is not None and settings.sources == ()


def test_not_asked_for() -> None:
    assert load_coverage_settings(_ns(agents_cov=[]), _no_ini) is None


def test_settings_from_ini() -> None:
    ini = {
        "agents_cov": ["pkg"],
        "agents_cov_report": ["term-missing", "json"],
        "agents_cov_fail_under": "90",
        "agents_cov_context": "",
        "agents_cov_config": "",
    }
    settings = load_coverage_settings(_ns(agents_cov=[], agents_cov_report=None), ini.__getitem__)
    assert settings is not None
    assert settings.sources == ("pkg",)
    assert settings.reports == (Report("term-missing"), Report("json"))
    assert settings.fail_under == 90.0


def test_pytest_cov_translated() -> None:
    settings = from_pytest_cov(
        _ns(
            cov_source=["pkg"],
            cov_report={"term-missing": "skip-covered", "xml": "c.xml"},
            cov_config=".coveragerc",
            cov_fail_under=75,
            cov_branch=True,
            cov_context="test",
            cov_append=True,
            no_cov_on_fail=True,
            cov_precision=1,
            no_cov=False,
        )
    )
    assert settings is not None
    assert settings.sources == ("pkg",)
    assert settings.reports == (Report("term-missing", "skip-covered"), Report("xml", "c.xml"))
    assert (settings.fail_under, settings.branch, settings.test_context) == (75.0, True, True)
    assert settings.append and settings.skip_reports_on_failure and settings.precision == 1
    assert settings.from_pytest_cov == "--agents-cov=pkg"


def test_pytest_cov_defaults() -> None:
    bare = from_pytest_cov(_ns(cov_source=[True], cov_report={}, no_cov=False))
    assert bare is not None
    assert bare.sources == () and bare.reports == (Report("term"),)
    assert bare.from_pytest_cov == "--agents-cov"
    silent = from_pytest_cov(_ns(cov_source=["pkg"], cov_report={"": None}))
    assert silent is not None and silent.reports == ()


def test_pytest_cov_off() -> None:
    assert from_pytest_cov(_ns(cov_source=[], cov_report={})) is None
    assert from_pytest_cov(_ns(cov_source=["pkg"], cov_report={}, no_cov=True)) is None
    assert from_pytest_cov(_ns()) is None


@pytest.mark.parametrize("kind", ["annotate", "markdown", "markdown-append"])
def test_pytest_cov_reports_without_equivalent(kind: str) -> None:
    with pytest.raises(CoverageOptionError, match=f"--cov-report={kind} has no equivalent"):
        from_pytest_cov(_ns(cov_source=["pkg"], cov_report={kind: None}))


def test_both_option_sets_together() -> None:
    ours = load_coverage_settings(_ns(agents_cov=["a"], agents_cov_report=["xml:o.xml"]), _no_ini)
    theirs = from_pytest_cov(
        _ns(cov_source=["b"], cov_report={"xml": "t.xml", "html": None}, cov_fail_under=60)
    )
    both = combine_settings(ours, theirs)
    assert both is not None
    assert both.sources == ("a", "b")
    assert both.reports == (Report("xml", "o.xml"), Report("html"))
    assert both.fail_under == 60.0
    assert combine_settings(None, None) is None
    assert combine_settings(ours, None) is ours


def test_loading_the_plugin_imports_neither_coverage_nor_filelock() -> None:
    """Every run loads the plugin; coverage (~50 ms) and filelock load only when used."""
    code = (
        "import sys, pytest_parallel_agents.plugin, pytest_parallel_agents.agent.process\n"
        "print(sorted(m for m in ('coverage', 'filelock') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
