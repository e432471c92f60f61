"""The controller's side of coverage: measure from the start, combine every agent's data, report."""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final

import pytest

from pytest_parallel_agents.coverage.options import (
    CoverageOptionError,
    CoverageSettings,
    combine_settings,
    from_pytest_cov,
    load_coverage_settings,
)
from pytest_parallel_agents.state import COVERAGE_KEY
from pytest_parallel_agents.transport.protocol import CoverageRequest

if TYPE_CHECKING:
    from pytest_parallel_agents.coverage.combine import Outcome, Sources

# Measuring and combining import coverage itself (and sqlite3): only a run that measures
# imports them (see the functions below), not every run that has this plugin installed.

PLUGIN_NAME: Final = "parallel-agents-coverage"


@final
class CoverageRun:
    """One run's coverage: the settings, the directory of data files, the controller's own
    measurement (it imports the project while collecting), and the result at the end."""

    def __init__(self, settings: CoverageSettings, invocation_dir: Path, rootdir: Path) -> None:
        from pytest_parallel_agents.coverage.measure import Measurement

        self.settings = settings
        self.invocation_dir = invocation_dir
        self.rootdir = rootdir
        # (local rootdir, the same directory on a remote host): [paths] for combining.
        self.remaps: list[tuple[str, str]] = []
        self.directory = Path(tempfile.mkdtemp(prefix="pytest-agents-cov-"))
        atexit.register(shutil.rmtree, self.directory, ignore_errors=True)
        self.request = CoverageRequest(
            sources=settings.sources,
            branch=settings.branch,
            config_file=settings.config_file,
            test_context=settings.test_context,
            directory=str(self.directory),
        )
        self.controller = Measurement(
            self.request, str(self.directory / ".coverage.controller"), whole_view=True
        )
        self.outcome: Outcome | None = None
        self.problems: list[str] = []

    @property
    def sources(self) -> Sources:
        from pytest_parallel_agents.coverage.combine import Sources

        return Sources(self.settings.sources, self.settings.config_file, self.settings.branch)

    def add_remote(self, agent_id: str, files: dict[str, bytes], host_root: str) -> None:
        """Data files a remote agent measured, named after it, and how to map its paths."""
        for name, data in files.items():
            (self.directory / f"{name}.{agent_id}.remote").write_bytes(data)
        pair = (str(self.rootdir), host_root)
        if host_root and host_root != str(self.rootdir) and pair not in self.remaps:
            self.remaps.append(pair)

    def finish(self, *, tests_failed: bool) -> Outcome:
        """Save the controller's data, combine every data file, write the reports."""
        from pytest_parallel_agents.coverage.combine import combine, target_data_file, write_reports

        self.controller.finish()
        inputs = sorted(p for p in self.directory.iterdir() if p.is_file())
        target = target_data_file(self.sources, self.invocation_dir)
        self.problems.extend(
            combine(inputs, target, self.sources, append=self.settings.append, remap=self.remaps)
        )
        reports = self.settings.reports
        if self.settings.skip_reports_on_failure and tests_failed:
            reports = ()
        outcome = write_reports(
            target,
            self.sources,
            reports,
            base=self.invocation_dir,
            fail_under=self.settings.fail_under,
            precision=self.settings.precision,
        )
        shutil.rmtree(self.directory, ignore_errors=True)
        self.outcome = outcome
        return outcome


def start_early(config: pytest.Config, *, in_agent: bool) -> None:
    """From ``pytest_load_initial_conftests``: before any conftest imports project code.

    In an agent only pytest-cov is kept quiet: the agent measures itself (see agent.py).
    """
    namespace = config.known_args_namespace
    theirs = None
    if in_agent or _agents_enabled(config, namespace):
        try:
            theirs = from_pytest_cov(namespace)
        except CoverageOptionError as exc:
            raise pytest.UsageError(str(exc)) from None
        if theirs is not None or in_agent:
            # pytest-cov would measure this process, which runs no tests: its number would
            # be wrong, so it stays inactive and the agents measure for it.
            from pytest_parallel_agents.compat import silence_pytest_cov

            silence_pytest_cov(config, namespace)
    if in_agent:
        return
    try:
        ours = load_coverage_settings(namespace, lambda name: _ini(config, name))
    except CoverageOptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    settings = combine_settings(ours, theirs)
    if settings is None:
        return
    run = CoverageRun(settings, Path(config.invocation_params.dir), config.rootpath)
    config.stash[COVERAGE_KEY] = run
    config.pluginmanager.register(CoveragePlugin(run), PLUGIN_NAME)
    if settings.test_context:
        from pytest_parallel_agents.coverage.measure import TestContexts

        # For the tests the controller runs itself (in-process runs, agents_serial tests).
        config.pluginmanager.register(TestContexts(run.controller), PLUGIN_NAME + "-contexts")
    run.controller.start()


def _ini(config: pytest.Config, name: str) -> Any:
    try:
        return config.getini(name)
    except (ValueError, KeyError):
        return None


def _agents_enabled(config: pytest.Config, namespace: argparse.Namespace) -> bool:
    from pytest_parallel_agents.options import agents_requested

    raw = getattr(namespace, "agents", None)
    if raw is None:
        raw = _ini(config, "agents")
    return agents_requested(raw)


@final
class CoveragePlugin:
    """Registered in the controller while coverage is on."""

    def __init__(self, run: CoverageRun) -> None:
        self._run = run

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        outcome = self._run.finish(tests_failed=bool(session.testsfailed))
        if outcome.failed_under and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        outcome = self._run.outcome
        if outcome is None:
            return
        terminalreporter.write_sep("-", "coverage (parallel agents)")
        settings = self._run.settings
        if settings.from_pytest_cov:
            terminalreporter.write_line(
                "pytest-cov's --cov was measured in every agent "
                f"(the same as {settings.from_pytest_cov})"
            )
        if outcome.table:
            terminalreporter.write(outcome.table)
        for line in self._run.problems + self._run.controller.warnings:
            terminalreporter.write_line(f"coverage: {line}", yellow=True)
        for line in outcome.lines:
            terminalreporter.write_line(line, red=line.startswith("FAIL"))
