"""Coverage options (``--agents-cov*``), their ini twins, and pytest-cov's ``--cov`` translated."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, final

from pytest_parallel_agents.options import GROUP

# Report types, and whether each takes a destination (file or directory) after a colon.
REPORT_TYPES: Final = {
    "term": False,
    "term-missing": False,
    "html": True,
    "xml": True,
    "json": True,
    "lcov": True,
}
# term and term-missing take a modifier instead of a destination, as in pytest-cov.
_TERM_MODIFIERS: Final = ("skip-covered",)


class CoverageOptionError(Exception):
    """A coverage option that cannot be used; the message is one line naming the option."""


@final
@dataclass(frozen=True)
class Report:
    """One report to write: its type and where (None: coverage's configured default)."""

    kind: str
    dest: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.kind in ("term", "term-missing")


@final
@dataclass(frozen=True)
class CoverageSettings:
    """What to measure and which reports to write; ``sources`` empty means the config's."""

    sources: tuple[str, ...]
    reports: tuple[Report, ...]
    fail_under: float | None
    config_file: str | bool
    branch: bool | None
    test_context: bool
    append: bool = False
    skip_reports_on_failure: bool = False
    precision: int | None = None
    # Set when these settings came from pytest-cov's --cov options: named in the summary.
    from_pytest_cov: str = ""


def add_coverage_options(parser: Any) -> None:
    """Register the coverage options in the plugin's group (``parser`` is pytest's Parser)."""
    group = parser.getgroup(GROUP)
    group.addoption(
        "--agents-cov",
        dest="agents_cov",
        metavar="SOURCE",
        action="append",
        nargs="?",
        const="",
        default=[],
        help="measure coverage of SOURCE (a package or a directory) in every agent and combine "
        "it (repeatable; no value: the coverage configuration's source). ini: agents_cov",
    )
    group.addoption(
        "--agents-cov-report",
        dest="agents_cov_report",
        metavar="TYPE[:DEST]",
        action="append",
        default=None,
        help="coverage report: term, term-missing[:skip-covered], html[:DIR], xml[:FILE], "
        "json[:FILE], lcov[:FILE] (repeatable; default term; empty value: no report). "
        "ini: agents_cov_report",
    )
    group.addoption(
        "--agents-cov-fail-under",
        dest="agents_cov_fail_under",
        metavar="PERCENT",
        default=None,
        help="exit with status 1 when the combined total is below PERCENT "
        "(default: the configuration's [report] fail_under). ini: agents_cov_fail_under",
    )
    group.addoption(
        "--agents-cov-config",
        dest="agents_cov_config",
        metavar="PATH",
        default=None,
        help="coverage configuration file (default: coverage's own search of .coveragerc, "
        "setup.cfg, tox.ini, pyproject.toml). ini: agents_cov_config",
    )
    group.addoption(
        "--agents-cov-branch",
        dest="agents_cov_branch",
        action="store_true",
        default=None,
        help="measure branch coverage (default: the configuration's [run] branch)",
    )
    group.addoption(
        "--agents-cov-context",
        dest="agents_cov_context",
        metavar="test",
        default=None,
        help="record each test's node id and phase as a dynamic coverage context. "
        "ini: agents_cov_context",
    )
    group.addoption(
        "--agents-cov-append",
        dest="agents_cov_append",
        action="store_true",
        default=False,
        help="add to the existing coverage data file instead of replacing it",
    )
    parser.addini("agents_cov", "sources for --agents-cov, one per line", type="linelist")
    parser.addini("agents_cov_report", "reports for --agents-cov-report", type="linelist")
    parser.addini("agents_cov_fail_under", "default for --agents-cov-fail-under", default="")
    parser.addini("agents_cov_config", "default for --agents-cov-config", default="")
    parser.addini("agents_cov_context", "default for --agents-cov-context", default="")


Ini = Callable[[str], Any]


def load_coverage_settings(namespace: argparse.Namespace, ini: Ini) -> CoverageSettings | None:
    """Our coverage options from parsed arguments and ini values; None when not asked for."""
    given = list(getattr(namespace, "agents_cov", None) or [])
    if not given:
        given = [str(s) for s in (ini("agents_cov") or [])]
    if not given:
        return None
    raw_reports = getattr(namespace, "agents_cov_report", None)
    if raw_reports is None:
        raw_reports = [str(r) for r in (ini("agents_cov_report") or [])]
    reports = parse_reports(raw_reports, "--agents-cov-report")
    fail_under = getattr(namespace, "agents_cov_fail_under", None) or _text(
        ini("agents_cov_fail_under")
    )
    context = getattr(namespace, "agents_cov_context", None) or _text(ini("agents_cov_context"))
    if context and context != "test":
        raise CoverageOptionError(f"--agents-cov-context expects 'test', got {context!r}")
    config = getattr(namespace, "agents_cov_config", None) or _text(ini("agents_cov_config"))
    return CoverageSettings(
        sources=tuple(dict.fromkeys(s for s in given if s)) if all(given) else (),
        reports=reports,
        fail_under=parse_percent(fail_under, "--agents-cov-fail-under") if fail_under else None,
        config_file=_config_file(config, "--agents-cov-config") if config else True,
        branch=getattr(namespace, "agents_cov_branch", None),
        test_context=context == "test",
        append=bool(getattr(namespace, "agents_cov_append", False)),
    )


def parse_reports(raw: Sequence[str], option: str) -> tuple[Report, ...]:
    """``TYPE[:DEST]`` values; no value at all means ``term``, one empty value means none."""
    if not raw:
        return (Report("term"),)
    reports: dict[str, Report] = {}
    for value in raw:
        text = str(value).strip()
        if not text:
            continue
        kind, _, dest = text.partition(":")
        if kind not in REPORT_TYPES:
            raise CoverageOptionError(
                f"{option}: unknown report type {kind!r}; choose from {', '.join(REPORT_TYPES)}"
            )
        if dest and not REPORT_TYPES[kind] and dest not in _TERM_MODIFIERS:
            raise CoverageOptionError(
                f"{option}: {kind} takes no destination (only ':skip-covered'), got {text!r}"
            )
        reports[kind] = Report(kind, dest or None)
    return tuple(reports.values())


def parse_percent(raw: object, option: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise CoverageOptionError(f"{option} expects a percentage from 0 to 100, got {raw!r}")
    return value


def _text(value: object) -> str:
    return str(value).strip() if value else ""


def _config_file(raw: str, option: str) -> str:
    if not os.path.isfile(raw):
        raise CoverageOptionError(f"{option}: no such file: {raw}")
    return str(Path(raw).resolve())


# --- pytest-cov ----------------------------------------------------------------------------

# pytest-cov's report types this plugin cannot write: named in the error, never dropped.
_PYTEST_COV_ONLY: Final = ("annotate", "markdown", "markdown-append")


def from_pytest_cov(namespace: argparse.Namespace) -> CoverageSettings | None:
    """pytest-cov's ``--cov*`` options as our settings, when ``--cov`` was given.

    pytest-cov measures the process it runs in; with agents that is the controller, which
    runs no tests, so its number would be wrong. Its options are read here and measured by
    the agents instead, and the caller keeps pytest-cov itself inactive.
    """
    # Only with agents: a plain run does not import compat.
    from pytest_parallel_agents.compat import pytest_cov_options

    theirs = pytest_cov_options(namespace)
    if theirs is None:
        return None
    sources, raw_reports = theirs.sources, theirs.reports
    for kind in raw_reports:
        if kind in _PYTEST_COV_ONLY:
            raise CoverageOptionError(
                f"--cov-report={kind} has no equivalent with --agents; "
                "use --agents-cov-report with term, term-missing, html, xml, json or lcov"
            )
    # pytest-cov: no --cov-report means term; a lone empty --cov-report= means none.
    reports = parse_reports(
        [f"{kind}:{dest}" if dest else kind for kind, dest in raw_reports.items()],
        "--cov-report",
    )
    config = theirs.config_file
    named = ["--agents-cov" + ("" if s is True else f"={s}") for s in sources]
    return CoverageSettings(
        sources=()
        if True in sources
        else tuple(dict.fromkeys(str(s) for s in sources if s is not True)),
        reports=reports,
        fail_under=theirs.fail_under,
        # pytest-cov reads .coveragerc by default and falls back to coverage's own search.
        config_file=str(Path(config).resolve()) if config and os.path.isfile(config) else True,
        branch=theirs.branch,
        test_context=theirs.context == "test",
        append=theirs.append,
        skip_reports_on_failure=theirs.skip_reports_on_failure,
        precision=theirs.precision,
        from_pytest_cov=" ".join(dict.fromkeys(named)),
    )


def combine_settings(
    ours: CoverageSettings | None, theirs: CoverageSettings | None
) -> CoverageSettings | None:
    """Both option sets given: sources and reports together, ours winning on the rest."""
    if ours is None or theirs is None:
        return ours or theirs
    sources = () if not ours.sources or not theirs.sources else ours.sources + theirs.sources
    reports = {r.kind: r for r in theirs.reports} | {r.kind: r for r in ours.reports}
    return replace(
        ours,
        sources=tuple(dict.fromkeys(sources)),
        reports=tuple(reports.values()),
        fail_under=ours.fail_under if ours.fail_under is not None else theirs.fail_under,
        branch=ours.branch if ours.branch is not None else theirs.branch,
        test_context=ours.test_context or theirs.test_context,
        append=ours.append or theirs.append,
        skip_reports_on_failure=theirs.skip_reports_on_failure,
        precision=theirs.precision,
        from_pytest_cov=theirs.from_pytest_cov,
    )
