"""The agent's pytest plugin: runs the tests the controller sends, streams their reports back."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import warnings
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any, Final, final

import pytest

from pytest_parallel_agents import compat
from pytest_parallel_agents.agent.channel import (
    ControllerLost,
    Inbox,
    OutputForwarding,
    ResultBuffer,
    Sender,
)
from pytest_parallel_agents.agent.live_log import LIVE_LOG_KEY, LiveLogCapture
from pytest_parallel_agents.agent.stacks import hide_agent_stacks
from pytest_parallel_agents.coverage.measure import Measurement, TestContexts
from pytest_parallel_agents.planning.scheduling import withdraw
from pytest_parallel_agents.state import AGENT_ID_KEY, CONTROLLER_KEYS
from pytest_parallel_agents.transport.protocol import (
    PROTOCOL_VERSION,
    AgentFailed,
    AgentInterrupted,
    AgentReady,
    CompactPass,
    PhaseTimes,
    ReturnTests,
    RunTests,
    SerializedReport,
    SessionExited,
    Shutdown,
    StartSession,
    TestResult,
    TestsReturned,
    WarningData,
    assert_never,
)
from pytest_parallel_agents.transport.scoreboard import Slot

# Plugins of the controller that a forked agent must not run: reporters and cache writers
# (the terminal reporter is replaced by a stand-in without hooks, see _quiet_terminal).
_FOREIGN_REPORT_MODULES: Final = ("pytest_html.",)
_CONTROLLER_REPORT_MODULES: Final = (compat.JUNIT_XML_MODULE, *_FOREIGN_REPORT_MODULES)
_CONTROLLER_ONLY: Final = (
    *compat.CACHE_WRITER_PLUGINS,
    "parallel-agents-durations",
    "parallel-agents-coverage",
    "parallel-agents-events",
)
# Files pytest must still see to set up packages and conftests, even when no test there is ours.
_ALWAYS_COLLECT: Final = frozenset({"__init__.py", "conftest.py"})


@final
class AgentSession:
    """pytest plugin of an agent: narrows collection, runs what it is sent, reports back."""

    def __init__(
        self,
        start: StartSession,
        inbox: Inbox,
        sender: Sender,
        measurement: Measurement | None = None,
    ) -> None:
        self.start = start
        self.ready_sent = False
        self.session_warnings: list[WarningData] = []
        self.measurement = measurement
        self.extra_plugins: list[object] = []
        if measurement is not None and measurement.request.test_context:
            self.extra_plugins.append(TestContexts(measurement))
        if start.worker_input:
            self.extra_plugins.append(XdistIdentity(dict(start.worker_input)))
        self._inbox = inbox
        self._sender = sender
        self._buffer = ResultBuffer(
            sender,
            measurement.checkpoint if measurement is not None else None,
            parent_pid=start.parent_pid,
        )
        self._files = frozenset(Path(f) for f in start.files)
        self._items: dict[int, pytest.Item] = {}
        self._reports: list[pytest.TestReport] = []
        self._warnings: list[WarningData] = []
        self._in_test = False
        self._adopting = False
        self._collect_errors: list[str] = []
        self._config: pytest.Config | None = None
        self.output = OutputForwarding(sender, enabled=start.forward_output)
        self._slot = Slot(start.status_dir, start.agent_id)
        self._live_log: LiveLogCapture | None = None
        self._running: pytest.Item | None = None

    # --- configuration ------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self._config = config
        config.stash[AGENT_ID_KEY] = self.start.agent_id

        option = config.option
        # The controller alone writes reports and the cache, and decides when to stop.
        for name, value in (
            # With --junitxml the writer must exist (record_property and its warnings need
            # it) but write nowhere; without it, it must not exist, as in a plain run: it
            # would cost every test its XML bookkeeping for nothing.
            ("xmlpath", os.devnull if getattr(option, "xmlpath", None) else None),
            ("report_log", None),
            ("maxfail", 0),
            ("exitfirst", False),
            ("stepwise", False),
            ("stepwise_skip", False),
            ("cacheclear", False),
            ("usepdb", False),
            ("trace", False),
            ("durations", None),
        ):
            if hasattr(option, name):
                setattr(option, name, value)
        option.basetemp = self.start.basetemp

    def adopt(self, config: pytest.Config, session: pytest.Session) -> None:
        """Become the agent of a session collected by the controller and inherited by fork."""
        manager = config.pluginmanager
        # The controller's reporters and cache writers came along with the fork; only the
        # controller reports, so they go (the junit writer is registered without a name).
        for name in _CONTROLLER_ONLY:
            plugin = manager.get_plugin(name)
            if plugin is not None:
                manager.unregister(plugin)
        _quiet_terminal(config)
        _drop_report_writers(manager, _CONTROLLER_REPORT_MODULES)
        for key in CONTROLLER_KEYS:
            with contextlib.suppress(KeyError):
                del config.stash[key]  # type: ignore[misc]
        # The controller stopped its global capture before forking: start our own, with
        # files of our own (fd 1 is devnull or the -s pipe by now).
        compat.start_global_capture(config)
        # Registering replays pytest_configure (a historic hook): agent id, options, basetemp.
        # It replays pytest_warning_recorded too: every warning the controller has replayed
        # from earlier agents, which are not this agent's to report again.
        self._adopting = True
        try:
            manager.register(self, "parallel-agents-agent")
        finally:
            self._adopting = False
        compat.renew_tmp_path_factory(config)
        cache = getattr(config, "cache", None)
        if cache is not None:
            _make_read_only(cache)
        self._slot.arm_crash_log()
        self._items = {index: session.items[index] for index in self.start.tests}
        _count_rerun_crashes(config, self._items, self.start.rerun_crashes)
        self._sender.send(AgentReady(PROTOCOL_VERSION, os.getpid(), (), ""))
        self.ready_sent = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # (A spawned agent keeps its junit writer: it writes to devnull, see pytest_configure.)
        _drop_report_writers(session.config.pluginmanager, _FOREIGN_REPORT_MODULES)
        cache = getattr(session.config, "cache", None)
        if cache is not None:
            _make_read_only(cache)
        self._slot.arm_crash_log()
        # The terminal reporter is bound to its own devnull by now: from here on, what tests
        # print (with -s) goes to the controller.
        self.output.start()

    # --- collection ---------------------------------------------------------------------

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        if not self._files or collection_path.name in _ALWAYS_COLLECT:
            return None
        if collection_path in self._files or collection_path.is_dir():
            return None
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Iterator[None]:
        collected = list(items)
        yield
        # The controller already selected and ordered; whatever it sends must be runnable here.
        items[:] = collected

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._collect_errors.append(f"{report.nodeid}: {report.longreprtext}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        by_nodeid: dict[str, deque[pytest.Item]] = {}
        for item in session.items:
            by_nodeid.setdefault(item.nodeid, deque()).append(item)
        missing: list[int] = []
        for index, nodeid in zip(self.start.tests, self.start.nodeids, strict=True):
            found = by_nodeid.get(nodeid)
            if found:
                self._items[index] = found.popleft()
            else:
                missing.append(index)
        _count_rerun_crashes(session.config, self._items, self.start.rerun_crashes)
        reason = ""
        if missing:
            reason = _mismatch(self.start, missing, session.items, by_nodeid)
            if self._collect_errors:
                reason += "; its collection errors:\n" + "\n".join(self._collect_errors)
        self._sender.send(
            AgentReady(
                PROTOCOL_VERSION,
                os.getpid(),
                tuple(missing),
                reason,
                self.start.host_root if self.start.remote else "",
            )
        )
        self.ready_sent = True

    # --- the run ------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if not self.ready_sent:
            return True
        # Only the controller reports: the agent's own terminal reporter (bound to devnull)
        # would format every test for nothing, and plugins do costly work for its summary
        # (hypothesis imports itself there). A forked agent did this when adopting.
        _quiet_terminal(session.config)
        # After collection: a conftest may load pytest-timeout too.
        hide_agent_stacks()
        # With log_cli, live log records go to the controller with their phase's report.
        self._live_log = LiveLogCapture.install(session.config)
        queue_: deque[int] = deque()
        try:
            self._serve(queue_)
        except KeyboardInterrupt as exc:
            # As a plain run's: the test ends where it was, fixtures are torn down, and the
            # controller ends the whole run, showing this test's location.
            self._interrupted(exc)
            raise
        self._buffer.close()
        return True

    def _serve(self, queue_: deque[int]) -> None:
        finishing = False
        while True:
            if len(queue_) < 2 and not finishing:
                # The next test decides how scoped fixtures are torn down: wait to know it.
                self._buffer.flush()
                finishing = self._receive(queue_, block=True)
            else:
                finishing = self._receive(queue_, block=False) or finishing
            if not queue_:
                if finishing:
                    break
                continue
            if len(queue_) < 2 and not finishing:
                continue
            index = queue_.popleft()
            nextitem = self._items.get(queue_[0]) if queue_ else None
            try:
                self._run_one(index, nextitem)
            except pytest.exit.Exception as exc:
                # The whole run ends, as in a plain one: the controller raises it again.
                self._buffer.flush()
                self._sender.send(SessionExited(str(exc.msg), exc.returncode))
                raise

    def _receive(self, queue_: deque[int], *, block: bool) -> bool:
        """Apply waiting commands; True once the controller said no more tests will come."""
        finishing = False
        try:
            message = self._inbox.get() if block else self._inbox.get_nowait()
        except queue.Empty:
            return False
        while True:
            match message:
                case RunTests(indices=indices):
                    queue_.extend(indices)
                case Shutdown(drop_pending=drop):
                    finishing = True
                    if drop:
                        queue_.clear()
                case ReturnTests(units=units):
                    self._sender.send(TestsReturned(withdraw(queue_, units)))
                case ControllerLost():
                    finishing = True
                    queue_.clear()
                case StartSession():
                    pass  # a duplicate start is harmless; the first one configured us
                case _:
                    assert_never(message)
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return finishing

    def _interrupted(self, exc: KeyboardInterrupt) -> None:
        self._buffer.flush()  # what finished before it, first
        config = self._config
        item = self._running
        report: SerializedReport | None = None
        if item is not None and config is not None:
            # The longrepr pytest's terminal shows for an interrupt (its crash line is the
            # test's own frame), carried as a report since reports know how to travel.
            longrepr = pytest.ExceptionInfo.from_exception(exc).getrepr(funcargs=True)
            interrupted = pytest.TestReport(
                item.nodeid, item.location, {}, "failed", longrepr, "call"
            )
            report = config.hook.pytest_report_to_serializable(config=config, report=interrupted)
        self._sender.send(AgentInterrupted(report))

    def _run_one(self, index: int, nextitem: pytest.Item | None) -> None:
        item = self._items.get(index)
        if item is None:
            return  # reported missing at start-up; the controller never sends it
        self._running = item
        self._reports = []
        self._warnings = []
        self._in_test = True
        live = self._live_log
        if live is not None:
            live.begin()
        started = perf_counter()
        self._slot.running(index)
        try:
            item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        finally:
            self._in_test = False
            self._slot.idle()
        self._running = None
        busy = perf_counter() - started
        reports = self._reports
        live_records = live.end() if live is not None else None
        passed = _compact(reports) if live_records is None else None
        serialized: tuple[SerializedReport, ...] = ()
        if passed is None:
            config = self._config
            assert config is not None
            to_serializable = config.hook.pytest_report_to_serializable
            serialized = tuple(to_serializable(config=config, report=r) for r in reports)
            if live_records is not None:
                for data, records in zip(serialized, live_records, strict=False):
                    if records:
                        data[LIVE_LOG_KEY] = records
        self._buffer.add(TestResult(index, serialized, passed, tuple(self._warnings), busy))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        config = self._config
        assert config is not None
        if report.when == "call":
            # Plugins settle a test's outcome here from state local to this process (pytest's
            # subtests fail a test whose subtests failed): settle it before it travels.
            config.hook.pytest_report_teststatus(report=report, config=config)
        self._reports.append(report)
        if self._live_log is not None:
            self._live_log.reported()

    def pytest_warning_recorded(
        self,
        warning_message: warnings.WarningMessage,
        when: str,
        nodeid: str,
        location: tuple[str, int, str] | None,
    ) -> None:
        if when != "runtest" or self._adopting:
            return  # collection and configuration warnings: the controller has its own
        category = warning_message.category
        data = WarningData(
            str(warning_message.message),
            category.__module__,
            category.__qualname__,
            str(warning_message.filename),
            int(warning_message.lineno or 0),
            when,
            nodeid,
        )
        (self._warnings if self._in_test else self.session_warnings).append(data)

    def pytest_internalerror(self, excrepr: object) -> None:
        self._sender.send(AgentFailed(str(excrepr)))

    def flush(self) -> None:
        self._buffer.close()


# A report with an attribute pytest's own reports lack (wasxfail, a plugin's) is not plain.
_PLAIN_ATTRS: Final = compat.TEST_REPORT_ATTRIBUTES


def _compact(reports: list[pytest.TestReport]) -> CompactPass | None:
    """The compact form of a test whose every phase passed plainly, else None."""
    if not reports:
        return None
    phases: list[PhaseTimes] = []
    for report in reports:
        if (
            type(report) is not pytest.TestReport
            or report.outcome != "passed"
            or report.longrepr is not None
            or report.sections
            or report.user_properties
            or not _PLAIN_ATTRS.issuperset(report.__dict__)
        ):
            return None
        phases.append(
            PhaseTimes(
                report.when,
                report.duration,
                getattr(report, "start", 0.0),
                getattr(report, "stop", 0.0),
            )
        )
    first = reports[0]
    path, lineno, domain = first.location
    return CompactPass((str(path), lineno, str(domain)), tuple(first.keywords), tuple(phases))


@final
@final
class XdistIdentity:
    """Gives the agent's config the ``workerinput`` pytest-xdist gives a worker's.

    Set after every other plugin configured (trylast): plugins that find it while
    configuring expect what their own xdist hooks put in it on the controller
    (pytest-rerunfailures' socket, pytest-randomly's seed), which no agent has. Plugins that
    look later, such as pytest-django naming the test database in a session fixture, see it.
    """

    def __init__(self, worker_input: dict[str, Any]) -> None:
        self._worker_input = worker_input

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        config.workerinput = self._worker_input  # type: ignore[attr-defined]


class _QuietReporter:
    """Stands in for an agent's terminal reporter: the same object to whoever asks for it
    (pytest's assertion messages use its terminal writer), but none of its hooks."""

    def __init__(self, reporter: object) -> None:
        self._reporter = reporter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)


def _drop_report_writers(manager: pytest.PytestPluginManager, modules: tuple[str, ...]) -> None:
    """Report writers registered without a name would write (or rewrite the reports they
    see, as pytest-html does its extras) in every agent: only the controller's write."""
    for plugin in list(manager.get_plugins()):
        if type(plugin).__module__.startswith(modules):
            manager.unregister(plugin)


def _count_rerun_crashes(
    config: pytest.Config, items: dict[int, pytest.Item], crashes: tuple[tuple[int, int], ...]
) -> None:
    """Tell pytest-rerunfailures how often each of these tests killed an agent before.

    Its database of crashes (which it keeps where pytest-xdist is installed) starts a test's
    attempts at that count, so crashes and failures share the test's reruns, as on the worker
    that reruns a crashed pytest-xdist worker's test.
    """
    add = getattr(getattr(config, "failures_db", None), "add_test_failure", None)
    if not callable(add):
        return
    for index, count in crashes:
        item = items.get(index)
        if item is not None:
            for _ in range(count):
                add(item.nodeid)


def _quiet_terminal(config: pytest.Config) -> None:
    manager = config.pluginmanager
    reporter = manager.get_plugin("terminalreporter")
    if reporter is None or isinstance(reporter, _QuietReporter):
        return
    manager.unregister(reporter)
    manager.register(_QuietReporter(reporter), "terminalreporter")
    writer = compat.terminal_writer(reporter)
    if writer is not None:
        # What a plugin writes to "the terminal" from an agent (pytest-timeout's stacks
        # before it ends the process) goes to the agent's stderr, which the controller
        # shows, or puts in the report of the test the agent died in; stdout is devnull.
        # The process's own stream: not whatever wraps sys.stderr at the moment.
        compat.set_writer_stream(writer, sys.__stderr__ or sys.stderr)


def _mismatch(
    start: StartSession,
    missing: list[int],
    items: list[pytest.Item],
    unclaimed: dict[str, deque[pytest.Item]],
) -> str:
    """Why tests are missing, with the first node ids that differ from the controller's."""
    first = start.nodeids[start.tests.index(missing[0])]
    where = "on its host" if start.remote else "here"
    text = (
        f"collection mismatch: agent {start.agent_id} did not collect this test {where}; "
        f"first differing node ids: the controller collected {first!r}"
    )
    module = first.split("::")[0]
    instead = next(
        (
            item.nodeid
            for item in items
            if item.nodeid.split("::")[0] == module and unclaimed.get(item.nodeid)
        ),
        None,
    )
    if instead is not None:
        text += f", the agent collected {instead!r} instead"
    elif not any(item.nodeid.split("::")[0] == module for item in items):
        text += f"; the agent collected nothing from {module}"
    return text


def _make_read_only(cache: Any) -> None:
    """Agents read the cache like the controller but keep their writes in memory."""
    overlay: dict[str, object] = {}
    real_get = cache.get

    def get(key: str, default: object) -> object:
        return overlay[key] if key in overlay else real_get(key, default)

    def set_(key: str, value: object) -> None:
        overlay[key] = value

    cache.get = get
    cache.set = set_
