"""The ``pytest-parallel-agents`` console script; ``merge`` combines the artifacts of shards."""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from pytest_parallel_agents import __version__
from pytest_parallel_agents.artifacts.durations import DurationsError, parse_durations
from pytest_parallel_agents.artifacts.events import parse_events
from pytest_parallel_agents.artifacts.merging import (
    DurationsSource,
    classify_json,
    count_cases,
    is_junit,
    junit_cases,
    merge_durations,
    merge_junit,
    merge_metrics,
    metrics_problem,
    shard_warnings,
)
from pytest_parallel_agents.artifacts.report import render
from pytest_parallel_agents.artifacts.timeline import merge_timelines
from pytest_parallel_agents.coverage.combine import (
    Sources,
    combine,
    is_coverage_data,
    write_reports,
)
from pytest_parallel_agents.coverage.options import (
    CoverageOptionError,
    Report,
    parse_percent,
    parse_reports,
)
from pytest_parallel_agents.files import write_atomically

PROG = "pytest-parallel-agents"
EXIT_OK = 0
EXIT_FAILED = 1  # an output could not be written
EXIT_USAGE = 4
JUNIT_OUT = "junit.xml"
DURATIONS_OUT = ".test_durations"
METRICS_OUT = "metrics.json"
REPORT_OUT = "report.html"
# How much of a file is read to tell whether it may be XML or JSON at all.
_PEEK = 512
_BOM = b"\xef\xbb\xbf"
_SQLITE = b"SQLite format 3\x00"
COVERAGE_OUT = ".coverage"


class UsageError(Exception):
    """A command line that cannot be run; exit status 4 with one ``ERROR:`` line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the console script and of ``python -m pytest_parallel_agents``."""
    parser = _Parser(prog=PROG, description="Tools for pytest-parallel-agents runs.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    merge = commands.add_parser(
        "merge",
        help="merge the JUnit XML, durations and metrics files of sharded runs",
        description=(
            "Merge the artifacts of a suite run as several shards: JUnit XML reports, "
            "durations files ({nodeid: seconds}) and metrics files. Each PATH is a file, or a "
            "directory searched recursively; artifacts are recognised by their content. "
            f"Writes DIR/{JUNIT_OUT}, DIR/{DURATIONS_OUT} and DIR/{METRICS_OUT}, each only "
            "when at least one input of its kind was found, and from the shards' events files "
            f"(--agents-events) the HTML report DIR/{REPORT_OUT}, a lane per job and agent. "
            "Coverage data files (what "
            "--agents-cov leaves in .coverage) are combined into DIR/.coverage, with the "
            "configuration's [paths] remapping, and reported as --cov-report asks."
        ),
    )
    merge.add_argument("paths", nargs="*", metavar="PATH", help="an artifact file or a directory")
    merge.add_argument(
        "-o", "--out", metavar="DIR", help="directory for the merged files (created if missing)"
    )
    merge.add_argument(
        "--cov-report",
        action="append",
        default=[],
        metavar="TYPE[:DEST]",
        help="a report of the combined coverage: term, term-missing[:skip-covered], html[:DIR], "
        "xml[:FILE], json[:FILE], lcov[:FILE] (repeatable; without DEST, files go into --out)",
    )
    merge.add_argument(
        "--cov-config",
        metavar="PATH",
        help="coverage configuration file (default: coverage's own search from here)",
    )
    merge.add_argument(
        "--cov-fail-under",
        metavar="PERCENT",
        help="exit with status 1 when the combined coverage total is below PERCENT",
    )
    return parser


# --- discovery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A file to examine; ``explicit`` when it was named on the command line."""

    path: Path
    explicit: bool


def _natural(name: str) -> list[tuple[int, int, str]]:
    """Sort key under which shard2 comes before shard10."""
    return [(0, int(t), t) if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def _walk(top: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(top):
        dirnames.sort(key=_natural)
        for name in sorted(filenames, key=_natural):
            yield Path(directory, name)


def discover(paths: Sequence[str]) -> list[Candidate]:
    """Every file named or found under a named directory, once each, in command-line order.

    A directory's files come before its subdirectories', each level in natural name order.
    """
    found: dict[str, Candidate] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            entries = [Candidate(p, False) for p in _walk(path)]
        else:
            entries = [Candidate(path, True)]
        for entry in entries:
            key = os.path.realpath(entry.path)
            if key not in found:
                found[key] = entry
            elif entry.explicit and not found[key].explicit:
                found[key] = Candidate(found[key].path, True)
    return list(found.values())


# --- reading -------------------------------------------------------------------------------


@dataclass
class Found:
    """The artifacts read, per kind, in discovery order, and the warnings met on the way."""

    junit: list[tuple[Path, ET.Element]] = field(default_factory=list)
    durations: list[tuple[Path, DurationsSource]] = field(default_factory=list)
    metrics: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    coverage: list[Path] = field(default_factory=list)
    events: list[tuple[Path, list[dict[str, Any]]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def empty(self) -> bool:
        return not (self.junit or self.durations or self.metrics or self.coverage or self.events)


def _looks_like_artifact(path: Path) -> bool:
    """Whether a file's name suggests an artifact, so that failing to parse it deserves a word."""
    name = path.name.lower()
    return (
        path.suffix.lower() in (".xml", ".json", ".jsonl")
        or "durations" in name
        or "coverage" in name
    )


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_artifact(candidate: Candidate, found: Found) -> None:
    """Recognise one file by its content and add it to ``found``; never modifies the file.

    A file named on the command line that is not an artifact is skipped with a warning. Of
    the files the directory walk met, those that are well-formed but not artifacts (other XML
    or JSON, other files) are skipped silently; those that fail to parse are skipped with a
    warning when their name suggests an artifact (``*.xml``, ``*.json``, ``*durations*``), as
    a truncated report would. A file that cannot be read, or a recognised artifact with bad
    content, is always skipped with a warning.
    """
    path, explicit = candidate.path, candidate.explicit

    def skip(reason: str, *, always: bool = False, malformed: bool = False) -> None:
        if always or explicit or (malformed and _looks_like_artifact(path)):
            found.warnings.append(f"WARNING: skipped {path}: {_one_line(reason)}")
            found.skipped += 1

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            skip("not a regular file", malformed=True)
            return
        with path.open("rb") as handle:
            head = handle.read(_PEEK)
            if head.startswith(_SQLITE):
                if is_coverage_data(path):
                    found.coverage.append(path)
                else:
                    skip("an SQLite file that is not coverage data", malformed=True)
                return
            lead = head.removeprefix(_BOM).lstrip()[:1]
            if lead not in (b"<", b"{", b"["):
                skip(
                    "empty file" if not head.strip() else "not JUnit XML, durations or metrics",
                    malformed=True,
                )
                return
            data = head + handle.read()
    except OSError as exc:
        skip(f"cannot read it: {exc.strerror or exc}", always=True)
        return

    if lead == b"<":
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            skip(f"not well-formed XML: {exc}", malformed=True)
            return
        if is_junit(root):
            found.junit.append((path, root))
        else:
            skip(f"XML root <{root.tag}> is not <testsuites> or <testsuite>")
        return

    if lead == b"{" and _is_events(data):
        try:
            records = parse_events(data.decode("utf-8-sig"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            skip(f"an events file with a malformed line: {exc}", always=True)
            return
        found.events.append((path, records))
        return
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        skip("not UTF-8 text", malformed=True)
        return
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "nested too deeply"
        )
        skip(f"not valid JSON: {reason}", malformed=True)
        return
    kind = classify_json(document)
    if kind == "metrics":
        problem = metrics_problem(document)
        if problem is not None:
            skip(f"malformed metrics file: {problem}", always=True)
        else:
            found.metrics.append((path, document))
    elif kind == "durations":
        try:
            durations = parse_durations(data.decode("utf-8-sig"), str(path))
        except DurationsError as exc:
            found.warnings.append(f"WARNING: skipped: {_one_line(exc)}")
            found.skipped += 1
            return
        source = DurationsSource(os.path.realpath(path), info.st_mtime_ns, durations)
        found.durations.append((path, source))
    else:
        skip("JSON that is neither a durations nor a metrics file")


def _is_events(data: bytes) -> bool:
    """Whether a file is an ``--agents-events`` stream: its first line is ``run_started``."""
    first = data.removeprefix(_BOM).lstrip().split(b"\n", 1)[0]
    try:
        record = json.loads(first)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and record.get("event") == "run_started"


def _job_name(path: Path, named: set[str]) -> str:
    """A shard's name in the merged report: the events file's directory when the file has
    the name every shard gives it, else its own stem."""
    name = path.parent.name if path.stem in named else path.stem
    return name or path.stem


# --- writing -------------------------------------------------------------------------------


def junit_text(root: ET.Element) -> str:
    """A JUnit document as pytest writes one: an XML declaration, then the tree."""
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode") + "\n"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageArgs:
    """The ``merge`` options about coverage data."""

    reports: tuple[Report, ...] = ()
    config: str | None = None
    fail_under: float | None = None

    @classmethod
    def parse(
        cls, reports: Sequence[str], config: str | None, fail_under: str | None
    ) -> CoverageArgs:
        try:
            parsed = parse_reports(reports, "--cov-report") if reports else ()
            limit = parse_percent(fail_under, "--cov-fail-under") if fail_under else None
        except CoverageOptionError as exc:
            raise UsageError(f"merge: {exc}") from None
        if config is not None and not os.path.isfile(config):
            raise UsageError(f"merge: --cov-config: no such file: {config}")
        # Destinations are relative to where the command runs, as with coverage's own CLI.
        absolute = tuple(
            Report(r.kind, str(Path(r.dest).resolve())) if r.dest and not r.is_terminal else r
            for r in parsed
        )
        return cls(absolute, config, limit)


def run_merge(
    paths: Sequence[str],
    out: str | None,
    stdout: TextIO,
    stderr: TextIO,
    coverage: CoverageArgs | None = None,
) -> int:
    """The ``merge`` command; returns the exit status."""
    coverage = coverage or CoverageArgs()
    if not paths:
        raise UsageError("merge: no PATH given (files or directories holding the artifacts)")
    if out is None:
        raise UsageError("merge: --out DIR is required")
    for raw in paths:
        if not os.path.exists(raw):
            raise UsageError(f"merge: {raw} does not exist")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"merge: --out {out} exists and is not a directory")

    candidates = discover(paths)
    found = Found()
    for candidate in candidates:
        read_artifact(candidate, found)
    metrics_documents = [document for _, document in found.metrics]
    found.warnings.extend(f"WARNING: {line}" for line in shard_warnings(metrics_documents))
    for line in found.warnings:
        print(line, file=stderr)
    if found.empty:
        raise UsageError(
            "merge: no JUnit XML, durations, metrics, events or coverage data files found in "
            + ", ".join(paths)
        )

    outputs = [
        target
        for target, present in (
            (out_dir / JUNIT_OUT, found.junit),
            (out_dir / DURATIONS_OUT, found.durations),
            (out_dir / METRICS_OUT, found.metrics),
            (out_dir / COVERAGE_OUT, found.coverage),
            (out_dir / REPORT_OUT, found.events),
        )
        if present
    ]
    for candidate in candidates:
        for target in outputs:
            if _same_file(candidate.path, target):
                raise UsageError(
                    f"merge: input {candidate.path} would be overwritten by the merge; "
                    "choose another --out"
                )

    lines: list[str] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if found.junit:
            merged = merge_junit([root for _, root in found.junit])
            counts = count_cases(junit_cases(merged))
            write_atomically(out_dir / JUNIT_OUT, junit_text(merged))
            lines.append(
                f"merged {_plural(len(found.junit), 'JUnit XML file')} "
                f"({_plural(counts.tests, 'test case')}: {counts.failures} failed, "
                f"{_plural(counts.errors, 'error')}, {counts.skipped} skipped) "
                f"-> {out_dir / JUNIT_OUT}"
            )
        if found.durations:
            durations = merge_durations([source for _, source in found.durations])
            write_atomically(out_dir / DURATIONS_OUT, json.dumps(durations, indent=2) + "\n")
            lines.append(
                f"merged {_plural(len(found.durations), 'durations file')} "
                f"({_plural(len(durations), 'test')}) -> {out_dir / DURATIONS_OUT}"
            )
        if found.metrics:
            document = merge_metrics(metrics_documents)
            write_atomically(out_dir / METRICS_OUT, json.dumps(document, indent=2) + "\n")
            lines.append(
                f"merged {_plural(len(found.metrics), 'metrics file')} -> {out_dir / METRICS_OUT}"
            )
        if found.events:
            stems = [path.stem for path, _ in found.events]
            shared = {stem for stem in stems if stems.count(stem) > 1}
            jobs = [(_job_name(path, shared), records) for path, records in found.events]
            timeline = merge_timelines(jobs)
            title = f"{_plural(len(jobs), 'job')} merged by {PROG}"
            write_atomically(out_dir / REPORT_OUT, render(timeline, None, title=title))
            lines.append(
                f"merged {_plural(len(jobs), 'events file')} "
                f"({_plural(timeline.tests, 'test')}) -> {out_dir / REPORT_OUT}"
            )
        status = _merge_coverage(found.coverage, out_dir, coverage, lines) if found.coverage else 0
    except OSError as exc:
        print(f"ERROR: merge: cannot write to {out_dir}: {_one_line(exc)}", file=stderr)
        return EXIT_FAILED
    if found.skipped:
        lines.append(f"{_plural(found.skipped, 'file')} skipped (see the warnings above)")
    for line in lines:
        print(line, file=stdout)
    return status


def _merge_coverage(inputs: list[Path], out_dir: Path, args: CoverageArgs, lines: list[str]) -> int:
    """Combine the shards' coverage data into DIR/.coverage and write the reports asked for."""
    sources = Sources(config_file=args.config or True)
    target = out_dir / COVERAGE_OUT
    problems = combine(inputs, target, sources)
    lines.append(
        f"combined {_plural(len(inputs), 'coverage data file')} -> {target}"
        + "".join(f"\n  coverage: {p}" for p in problems)
    )
    if not args.reports and args.fail_under is None:
        return EXIT_OK
    outcome = write_reports(target, sources, args.reports, base=out_dir, fail_under=args.fail_under)
    if outcome.table:
        lines.append(outcome.table.rstrip("\n"))
    lines.extend(outcome.lines)
    return EXIT_FAILED if outcome.failed_under else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; returns the exit status (4 on a usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"no command given; see {PROG} --help")
        coverage = CoverageArgs.parse(args.cov_report, args.cov_config, args.cov_fail_under)
        return run_merge(args.paths, args.out, sys.stdout, sys.stderr, coverage)
    except UsageError as exc:
        print(f"ERROR: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
