"""Coverage measured in one process, an agent or the controller, saved at test boundaries."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from time import perf_counter
from typing import Final, final

import pytest

from pytest_parallel_agents.compat import flush_coverage
from pytest_parallel_agents.transport.protocol import CoverageRequest

# Warnings that one process of a parallel run cannot judge: an agent imports only some of
# the sources, and a forked agent finds every source imported before it started measuring.
_PARTIAL_VIEW: Final = ["no-data-collected", "module-not-imported", "module-not-measured"]


@final
class Measurement:
    """A Coverage object bound to one data file, with cheap saves between tests.

    ``checkpoint`` moves what the tracer recorded into the data file; it runs in the test
    thread just before finished tests' results leave the agent, so a result the controller
    holds always has its coverage on disk, even if the agent dies in the next test.
    """

    def __init__(self, request: CoverageRequest, data_file: str, *, whole_view: bool) -> None:
        self.request = request
        self.warnings: list[str] = []
        self.checkpoint_seconds = 0.0
        import coverage  # only when measuring: importing it costs every run ~50 ms

        self._cov = coverage.Coverage(
            data_file=data_file,
            source=list(request.sources) or None,
            branch=request.branch,
            config_file=request.config_file,
        )
        if not whole_view:
            self._cov.set_option("run:disable_warnings", _PARTIAL_VIEW)
        self._running = False

    def start(self) -> None:
        if not self._running:
            with self._recording():
                self._cov.start()
            self._running = True

    def pause(self) -> None:
        if self._running:
            with self._recording():
                self._cov.stop()
            self._running = False

    def checkpoint(self) -> None:
        """Write what was measured since the last checkpoint to the data file."""
        started = perf_counter()
        with self._recording():
            flush_coverage(self._cov)
        self.checkpoint_seconds += perf_counter() - started

    def finish(self) -> None:
        """Stop measuring and save everything, unexecuted source files included."""
        with self._recording():
            if self._running:
                self._cov.stop()
                self._running = False
            self._cov.save()

    def switch_context(self, context: str) -> None:
        if self._running:
            self._cov.switch_context(context)

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        """Coverage's warnings go to a list shown in the coverage summary, not to pytest's
        (where -W error would turn them into a failure of whatever test is running)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", _coverage_warning())
            yield
        for message in caught:
            text = str(message.message)
            if text not in self.warnings:
                self.warnings.append(text)


def agent_data_file(request: CoverageRequest, agent_id: str) -> str:
    """The data file of one agent process: unique per process, in the run's coverage dir."""
    return os.path.join(request.directory, f".coverage.{agent_id}.{os.getpid()}")


@final
class TestContexts:
    """``--agents-cov-context test``: each phase of each test is its own dynamic context,
    named ``<node id>|<phase>`` as pytest-cov names them."""

    __test__ = False

    def __init__(self, measurement: Measurement) -> None:
        self._measurement = measurement

    def _switch(self, item: pytest.Item, when: str) -> Iterator[None]:
        self._measurement.switch_context(f"{item.nodeid}|{when}")
        try:
            yield
        finally:
            self._measurement.switch_context("")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._switch(item, "setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._switch(item, "run"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._switch(item, "teardown"))


def _coverage_warning() -> type[Warning]:
    from coverage.exceptions import CoverageWarning

    return CoverageWarning
