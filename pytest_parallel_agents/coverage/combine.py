"""Coverage data files combined into one, and the reports a user asked for written from it."""

from __future__ import annotations

import io
import os
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

from pytest_parallel_agents.coverage.options import Report

if TYPE_CHECKING:
    import coverage

# Coverage's defaults for report destinations, used when neither DEST nor the config says.
_DEFAULT_DEST: Final = {
    "html": "htmlcov",
    "xml": "coverage.xml",
    "json": "coverage.json",
    "lcov": "coverage.lcov",
}


@final
@dataclass(frozen=True)
class Sources:
    """What the combining Coverage object measures by: the user's settings."""

    sources: tuple[str, ...] = ()
    config_file: str | bool = True
    branch: bool | None = None


@final
@dataclass
class Outcome:
    """What combining and reporting produced, for the terminal and the exit status."""

    data_file: Path
    total: float | None = None
    fail_under: float | None = None
    failed_under: bool = False
    table: str = ""  # the terminal report, when one was asked for
    lines: list[str] = field(default_factory=list)  # files written, problems met


def is_coverage_data(path: Path) -> bool:
    """Whether a file is a coverage.py data file (SQLite with coverage's schema table)."""
    try:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                return False
        uri = f"file:{path.resolve().as_posix()}?mode=ro"
        with sqlite3.connect(uri, uri=True) as db:
            found = db.execute(
                "select 1 from sqlite_master where type='table' and name='coverage_schema'"
            ).fetchone()
        return found is not None
    except (OSError, sqlite3.Error):
        return False


def new_coverage(settings: Sources, data_file: str | None = None) -> coverage.Coverage:
    # Imported here: a run without coverage should not pay ~50 ms for importing it.
    import coverage

    if data_file is None:
        return coverage.Coverage(
            source=list(settings.sources) or None,
            branch=settings.branch,
            config_file=settings.config_file,
        )
    return coverage.Coverage(
        data_file=data_file,
        source=list(settings.sources) or None,
        branch=settings.branch,
        config_file=settings.config_file,
    )


def target_data_file(settings: Sources, base: Path) -> Path:
    """Where the combined data goes: the configuration's data_file (default .coverage,
    or $COVERAGE_FILE as coverage itself reads it)."""
    configured = new_coverage(settings).config.data_file or ".coverage"
    return _dest(configured, base)


def combine(
    inputs: Sequence[Path],
    target: Path,
    settings: Sources,
    *,
    append: bool = False,
    remap: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Combine ``inputs`` into ``target``, replacing it (or adding to it with ``append``).

    The inputs are never modified. ``remap`` adds (local root, other root) pairs to the
    configuration's ``[paths]``, so that data measured elsewhere names local files. Returns
    the problems met, one line each (an unreadable input is skipped, not fatal).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(scratch)
    problems: list[str] = []
    from coverage.exceptions import CoverageWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CoverageWarning)
            cov = new_coverage(settings, scratch)
            if remap:
                paths = dict(cov.config.paths)
                for number, (local, other) in enumerate(remap):
                    paths[f"pytest-parallel-agents-{number}"] = [local, other]
                cov.set_option("paths", paths)
            paths_in = [str(p) for p in inputs]
            if append and target.exists():
                paths_in.insert(0, str(target))
            if paths_in:
                cov.combine(paths_in, strict=False, keep=True)
            cov.get_data().write()
        problems.extend(_one_line(str(w.message)) for w in caught)
        if Path(scratch).exists():
            os.replace(scratch, target)
        else:
            target.unlink(missing_ok=True)
    finally:
        Path(scratch).unlink(missing_ok=True)
    return problems


def write_reports(
    data_file: Path,
    settings: Sources,
    reports: Sequence[Report],
    *,
    base: Path,
    fail_under: float | None = None,
    precision: int | None = None,
) -> Outcome:
    """Write every report from the combined data file; relative destinations are under base."""
    from coverage.exceptions import CoverageException, CoverageWarning, NoDataError
    from coverage.results import should_fail_under

    outcome = Outcome(data_file)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CoverageWarning)
        cov = new_coverage(settings, str(data_file))
        cov.load()
        if precision is not None:
            cov.set_option("report:precision", precision)
        configured_fail_under = float(cov.config.fail_under or 0.0)
        outcome.fail_under = fail_under if fail_under is not None else configured_fail_under
        try:
            _write_all(cov, reports, base, outcome)
        except NoDataError:
            outcome.lines.append("coverage: no data was collected")
        except CoverageException as exc:
            outcome.lines.append(f"coverage: {_one_line(str(exc))}")
    outcome.lines.extend(f"coverage: {_one_line(str(w.message))}" for w in caught)
    if outcome.total is not None and outcome.fail_under:
        digits = int(cov.config.precision)
        outcome.failed_under = should_fail_under(outcome.total, outcome.fail_under, digits)
        shown = f"{outcome.total:.{max(digits, 2)}f}%"
        if outcome.failed_under:
            outcome.lines.append(
                f"FAIL Required test coverage of {outcome.fail_under:g}% not reached. "
                f"Total coverage: {shown}"
            )
        else:
            outcome.lines.append(
                f"Required test coverage of {outcome.fail_under:g}% reached. "
                f"Total coverage: {shown}"
            )
    return outcome


def _write_all(cov: coverage.Coverage, reports: Sequence[Report], base: Path, out: Outcome) -> None:
    config = cov.config
    for report in reports:
        if report.is_terminal:
            buffer = io.StringIO()
            out.total = cov.report(
                file=buffer,
                show_missing=True if report.kind == "term-missing" else None,
                skip_covered=True if report.dest == "skip-covered" else None,
            )
            out.table = buffer.getvalue()
        else:
            # (writer, where the configuration names the default destination, its label)
            writers: dict[str, tuple[Callable[..., float], str, str, str, str]] = {
                "html": (cov.html_report, "html_dir", "HTML", "dir", "directory"),
                "xml": (cov.xml_report, "xml_output", "XML", "file", "outfile"),
                "json": (cov.json_report, "json_output", "JSON", "file", "outfile"),
                "lcov": (cov.lcov_report, "lcov_output", "LCOV", "file", "outfile"),
            }
            write, setting, label, noun, keyword = writers[report.kind]
            default = getattr(config, setting) or _DEFAULT_DEST[report.kind]
            where = _dest(report.dest or default, base)
            out.total = write(**{keyword: str(where)})
            out.lines.append(f"Coverage {label} written to {noun} {where}")
    if out.total is None and out.fail_under:
        out.total = cov.report(file=io.StringIO())


def _dest(raw: str, base: Path) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def _one_line(text: str) -> str:
    return " ".join(text.split())
