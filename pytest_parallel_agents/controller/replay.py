"""Replay agents' reports through the controller's hooks, each test exactly once."""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, final

import pytest

from pytest_parallel_agents import compat
from pytest_parallel_agents.agent.live_log import LIVE_LOG_KEY, write_records
from pytest_parallel_agents.controller.progress import FileProgress
from pytest_parallel_agents.transport.protocol import (
    CompactPass,
    PhaseTimes,
    SerializedReport,
    WarningData,
)


@final
class Ledger:
    """Counts final reports per test; the plugin's own check that each is reported once."""

    def __init__(self, indices: Sequence[int]) -> None:
        self._seen: dict[int, int] = dict.fromkeys(indices, 0)

    def record(self, index: int) -> bool:
        """Note a report for ``index``; False if it was already reported (drop this one)."""
        count = self._seen.get(index)
        if count is None:
            raise KeyError(f"test index {index} is not part of this run")
        self._seen[index] = count + 1
        return count == 0

    def done(self, index: int) -> bool:
        return self._seen.get(index, 0) > 0

    def unreported(self) -> list[int]:
        return [index for index, count in self._seen.items() if count == 0]

    def reported(self) -> int:
        return sum(1 for count in self._seen.values() if count)


@final
class Replayer:
    """Turns serialized reports back into pytest reports and calls the hooks a plain run calls."""

    def __init__(
        self,
        config: pytest.Config,
        tests: Sequence[pytest.Item] = (),
        *,
        ordered: bool = False,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self._config = config
        self._hook = config.hook
        self._progress = FileProgress.create(config, tests)
        # In order (stop-on-failure runs): each test's replay waits for those before it.
        self._ordered = ordered
        self._position = {item.nodeid: n for n, item in enumerate(tests)}
        self._stopped = stopped
        self._held: dict[int, Callable[[], None]] = {}
        # Crashed attempts reported as reruns, each going out right before its test's result.
        self._reruns: dict[int, list[Callable[[], None]]] = {}
        self._next = 0
        self.discarded = 0
        # Without a writer to redirect, output is simply not batched.
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        self._writer = compat.terminal_writer(terminal)
        self._live_log = compat.live_log_handler(config)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Gather the terminal output of a batch of replays and write it once.

        A plain run writes each progress letter straight to the terminal; replayed in
        batches, per-letter writes (each a system call when stdout is unbuffered, each waking
        the reader of a pipe) cost the controller more than the rest of the replay, on cores
        the agents need. What the user sees is the same, a batch at a time.
        """
        writer = self._writer
        if writer is None or isinstance(compat.writer_stream(writer), io.StringIO):
            yield
            return
        stream = compat.writer_stream(writer)
        gathered = io.StringIO()
        compat.set_writer_stream(writer, gathered)
        try:
            yield
        finally:
            compat.set_writer_stream(writer, stream)
            text = gathered.getvalue()
            if text:
                stream.write(text)
                stream.flush()

    @staticmethod
    def in_order(config: pytest.Config) -> bool:
        """Whether replays must follow the collection order: when the first failure stops
        the run (``-x``, ``--maxfail``, ``--sw``), a plain run reports exactly the tests
        before the first failure in collection order, not those that finished first."""
        return bool(config.getoption("maxfail", 0) or config.getoption("stepwise", False))

    def finish(self) -> None:
        """No more results will come: replay what is held, in order, then write what the
        terminal still holds. Later replays (tests reported lost) go out at once."""
        for position in sorted(self._held):
            self._replay(position)
        self._ordered = False
        if self._progress is not None:
            self._progress.finish_all()

    def _when_due(self, item: pytest.Item, replay: Callable[[], None]) -> None:
        position = self._position.get(item.nodeid)
        if not self._ordered or position is None:
            if position is not None and position in self._reruns:
                # Held while replays went in order (finish() ended that): they come first.
                for rerun in self._reruns.pop(position):
                    rerun()
            replay()
            return
        self._held[position] = replay
        while self._next in self._held:
            self._replay(self._next)
        # Positions never replayed (a crashed test still retried) hold the rest back.

    def _replay(self, position: int) -> None:
        replay = self._held.pop(position)
        reruns = self._reruns.pop(position, [])
        self._next = max(self._next, position + 1)
        if self._stopped():
            self.discarded += 1  # after the failure that stops the run: not in a plain run
            return
        for rerun in reruns:
            rerun()
        replay()

    def _line(self, nodeid: str, *, last: bool = True) -> contextlib.AbstractContextManager[None]:
        if self._progress is None:
            return contextlib.nullcontext()
        return self._progress.test(nodeid, last=last)

    def test(
        self,
        item: pytest.Item,
        reports: Sequence[SerializedReport],
        passed: CompactPass | None,
        warning_data: Sequence[WarningData],
        agent_id: str,
    ) -> None:
        def replay() -> None:
            with self._line(item.nodeid):
                self._test(item, reports, passed, agent_id)
            for data_ in warning_data:
                self.warning(data_)

        self._when_due(item, replay)

    def _test(
        self,
        item: pytest.Item,
        reports: Sequence[SerializedReport],
        passed: CompactPass | None,
        agent_id: str,
    ) -> None:
        hook = self._hook
        nodeid = item.nodeid
        if passed is not None:
            location = passed.location
            # One keywords dict for all phases, as TestReport.from_item_and_call would build.
            keyword_map: dict[str, Literal[1]] = dict.fromkeys(passed.keywords, 1)
            hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
            for phase in passed.phases:
                report = _passed(nodeid, location, keyword_map, phase)
                report.agent_id = agent_id  # type: ignore[attr-defined]
                hook.pytest_runtest_logreport(report=report)
            hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)
        else:
            # The agent computed the location already; item.location costs file-system calls.
            location = _location(reports[0]) if reports else item.location
            hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
            for data in reports:
                # Agents' live log records, written where a plain run writes them: in the
                # test's block, before the phase's outcome.
                records = data.pop(LIVE_LOG_KEY, None)
                if records and self._live_log is not None:
                    write_records(self._live_log, str(data.get("when")), records)
                report = hook.pytest_report_from_serializable(config=self._config, data=data)
                compat.restore_subtest_kwargs(report, data)
                report.agent_id = agent_id  # lets report consumers tell which agent ran it
                hook.pytest_runtest_logreport(report=report)
            hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    def failure(
        self, item: pytest.Item, message: str, agent_id: str, *, rerun: int | None = None
    ) -> None:
        """Report a test that no agent could report itself (a crash, a collection gap).

        ``rerun``: the attempt's index for pytest-rerunfailures' summary, for a test it reran.
        """

        def replay() -> None:
            with self._line(item.nodeid):
                self._failure(item, message, agent_id, rerun=rerun)

        self._when_due(item, replay)

    def rerun(self, item: pytest.Item, message: str, agent_id: str, *, rerun: int) -> None:
        """Report an attempt of a test that runs again, as pytest-rerunfailures reports one
        (outcome ``rerun``: ``R``, ``RERUN``, ``N rerun``); the test's result comes later.

        Replayed in order (``-x``), it waits to go out right before that result, as each
        attempt of a plain run comes right before the next.
        """

        def replay() -> None:
            with self._line(item.nodeid, last=False):
                self._failure(item, message, agent_id, rerun=rerun, outcome="rerun")

        position = self._position.get(item.nodeid)
        if self._ordered and position is not None:
            self._reruns.setdefault(position, []).append(replay)
        else:
            replay()

    def _failure(
        self,
        item: pytest.Item,
        message: str,
        agent_id: str,
        *,
        rerun: int | None = None,
        outcome: str = "failed",
    ) -> None:
        hook = self._hook
        location = item.location
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=location)
        report = pytest.TestReport(
            nodeid=item.nodeid,
            location=location,
            keywords=dict.fromkeys(item.keywords, 1),
            outcome="failed",
            longrepr=message,
            when="call",
            sections=[],
            duration=0.0,
            user_properties=[],
        )
        report.agent_id = agent_id  # type: ignore[attr-defined]
        if rerun is not None:
            report.rerun = rerun  # type: ignore[attr-defined]
        # "rerun" is pytest-rerunfailures' outcome, not one pytest's types know.
        report.outcome = outcome  # type: ignore[assignment]
        hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=location)

    def warning(self, data: WarningData) -> None:
        category = _category(data.category_module, data.category_name)
        try:
            instance: Warning = category(data.message)
        except Exception:
            instance = UserWarning(data.message)
            category = UserWarning
        message = warnings.WarningMessage(instance, category, data.filename, data.lineno)
        self._hook.pytest_warning_recorded.call_historic(
            kwargs={
                "warning_message": message,
                "when": data.when,
                "nodeid": data.nodeid,
                "location": None,
            }
        )


def _passed(
    nodeid: str,
    location: tuple[str, int | None, str],
    keywords: dict[str, Literal[1]],
    phase: PhaseTimes,
) -> pytest.TestReport:
    report = pytest.TestReport(
        nodeid,
        location,
        keywords,
        "passed",
        None,
        phase.when,  # type: ignore[arg-type]
        [],
        phase.duration,
        user_properties=[],
    )
    report.start, report.stop = phase.start, phase.stop  # keyword arguments only on newer pytest
    return report


def _location(data: SerializedReport) -> tuple[str, int | None, str]:
    path, lineno, domain = data["location"]
    return str(path), lineno, str(domain)


def _category(module: str, qualname: str) -> type[Warning]:
    try:
        target: object = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except Exception:
        return UserWarning
    if isinstance(target, type) and issubclass(target, Warning):
        return target
    return UserWarning
