"""The controller: runs the plan's waves on agents, feeds them tests, replays what they report."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import queue
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, final

import pytest

from pytest_parallel_agents import compat
from pytest_parallel_agents.agent.process import fork_child_setup
from pytest_parallel_agents.controller.events import RunEvents
from pytest_parallel_agents.controller.fleet import Fleet, HostUnreachable
from pytest_parallel_agents.controller.live import LiveStream, LiveView
from pytest_parallel_agents.controller.policy import Decision, Dispatcher, Send, StartAgents
from pytest_parallel_agents.controller.pools import AgentState, PoolState, SuiteWork
from pytest_parallel_agents.controller.recovery import CoverageSink, Recovery
from pytest_parallel_agents.controller.replay import Ledger, Replayer
from pytest_parallel_agents.controller.reporter import Reporter
from pytest_parallel_agents.controller.runstate import AgentRecord, RunState
from pytest_parallel_agents.controller.watchdog import WATCH_INTERVAL, Watchdog
from pytest_parallel_agents.planning.sizing import Plan, SuitePlan
from pytest_parallel_agents.planning.txspecs import TxSpec
from pytest_parallel_agents.transport.gateways import FORK, Transport
from pytest_parallel_agents.transport.protocol import (
    PROTOCOL_VERSION,
    AgentAlive,
    AgentFailed,
    AgentFinished,
    AgentInterrupted,
    AgentReady,
    ChannelClosed,
    CoverageRequest,
    Event,
    OutputForwarded,
    SerializedReport,
    SessionExited,
    StartSession,
    TestResult,
    TestsReported,
    TestsReturned,
    assert_never,
)
from pytest_parallel_agents.transport.scoreboard import take_stderr

# How long Ctrl-C waits for interrupted agents to report before they are stopped: an agent
# interrupted mid-test tears its fixtures down and exits in well under this.
INTERRUPT_GRACE: Final = 3.0

__all__ = ["AgentInternalError", "Controller", "SuiteWork"]


class AgentInternalError(Exception):
    """An agent hit an internal error; its traceback is the message."""


@final
class Controller:
    """Drives one parallel session: waves of suite pools, dispatch, stealing, replay."""

    def __init__(
        self,
        config: pytest.Config,
        session: pytest.Session,
        work: dict[str, SuiteWork],
        run: RunState,
        *,
        basetemp: str,
        max_restarts: int,
        max_retries: int,
        start_method: str,
        in_order: bool = True,
        xdist_compat: bool = False,
        timeout: float | None = None,
        timeouts: dict[int, float] | None = None,
        heartbeat: float = 30.0,
        coverage: CoverageRequest | None = None,
        coverage_sink: CoverageSink | None = None,
        tx: Sequence[TxSpec] = (),
        rsync: Sequence[Path] = (),
        rsync_ignore: Sequence[str] = (),
        events: RunEvents | None = None,
        live: bool = False,
    ) -> None:
        self._config = config
        self._events = events
        self._live_wanted = live
        self._live: LiveView | None = None
        # What each agent runs, as the watchdog last saw it: (test, since in the wall clock).
        self._running_now: dict[str, tuple[int, float]] = {}
        # With durations, the predicted seconds of each test (the live view's time left).
        self._predicted: dict[int, float] = {}
        self._predicted_left = 0.0
        # The agent a replacement being started stands in for (recovery tells, see replace).
        self._replacing: str | None = None
        self._session = session
        self._items = session.items
        self._work = work
        self._in_order = in_order
        self._xdist_compat = xdist_compat
        self._worker_numbers = itertools.count()  # gw0, gw1, ... across the run
        self._run = run
        self._basetemp = basetemp
        self._coverage = coverage
        self._coverage_sink = coverage_sink
        self._status_dir = Path(basetemp) / ".agents"
        self._status_dir.mkdir(parents=True, exist_ok=True)
        self._spec = FORK if start_method == "fork" else "popen"
        self._fork_child = fork_child_setup(config, session)
        self._replayer = Replayer(
            config,
            [self._items[i] for i in sorted(i for w in work.values() for i in w.tests)],
            ordered=Replayer.in_order(config),
            stopped=self._should_stop,
        )
        self._ledger = Ledger([i for w in work.values() for i in w.tests])
        self._transport = Transport()
        if tx:
            self._spec = "popen"  # nothing is forked when the gateways are given
        self._fleet = Fleet(
            self._transport,
            local_spec=self._spec,
            tx=tx,
            run_id=run.run_id,
            rootdir=config.rootpath,
            rsync=rsync,
            rsync_ignore=rsync_ignore,
            inifile=config.inipath,
        )
        self._agents: dict[str, AgentState] = {}
        self._dispatcher = Dispatcher(
            work=work,
            agents=self._agents,
            reserve=self._fleet.reserve,
            done=self._ledger.done,
            wall_clock=time.time,
            in_order=in_order,
        )
        self._pools = self._dispatcher.pools
        # pytest-rerunfailures' reruns of each test that killed an agent (read at its first crash).
        self._crash_reruns: dict[int, int] = {}
        self._interrupting = False
        self._sys_path = tuple(sys.path)
        self._args = tuple(config.invocation_params.args) + _seeds(config)
        self._total_agents = run.plan.peak_agents if run.plan else 1
        self._forward_output = config.getoption("capture") == "no"
        self._reporter = Reporter(config)
        self._watchdog = Watchdog(
            self._fleet,
            self._transport,
            self._status_dir,
            timeout=timeout,
            timeouts=timeouts or {},
            heartbeat=heartbeat,
            running=self._test_running if events is not None or live else None,
        )
        self._recovery = Recovery(
            self,
            items=self._items,
            run=run,
            fleet=self._fleet,
            ledger=self._ledger,
            replayer=self._replayer,
            status_dir=self._status_dir,
            max_restarts=max_restarts,
            max_retries=max_retries,
            coverage_sink=coverage_sink,
            events=events,
        )

    # --- what recovery asks of the controller (recovery.Pools) ---------------------------

    @property
    def stopping(self) -> bool:
        return self._dispatcher.stopping

    def agent(self, agent_id: str) -> AgentState:
        return self._agents[agent_id]

    def crash_reruns(self, index: int) -> int:
        reruns = self._crash_reruns.get(index)
        if reruns is None:
            reruns = _rerunfailures_reruns(self._config, self._items[index])
            self._crash_reruns[index] = reruns
        return reruns

    # --- the run ------------------------------------------------------------------------

    def run(self, plan: Plan) -> None:
        """Run every suite of the plan; always leaves no agent behind.

        Suites start in the plan's wave order, each as soon as enough of the budget is free
        (a finished suite's slots go to the next one without waiting for its whole wave);
        an exclusive suite starts only when nothing runs, and nothing starts beside it.
        """
        self._run.execution_started = time.perf_counter()
        cpu_started = time.process_time()
        if self._spec == FORK:
            # Keep the collector from touching (and so copying) every inherited object. No
            # gc.collect() first: on 50,000 tests it holds the first fork back ~0.1 s, to free
            # a little garbage that the agents, and the controller after unfreeze, free anyway.
            gc.freeze()
        pending = deque((suite, wave.exclusive) for wave in plan.waves for suite in wave.suites)
        # pytest's global capture files would be shared by every fork (one file offset for
        # all agents' output): stop it here, each forked agent starts its own.
        stopped = self._spec == FORK and compat.stop_global_capture(self._config)
        try:
            with _terminate_as_interrupt():
                try:
                    self._fleet.prepare()
                except HostUnreachable as exc:
                    raise pytest.UsageError(str(exc)) from None
                self._start_live()
                try:
                    self._run_plan(plan, pending)
                finally:
                    self._stop_live()
        finally:
            if stopped:
                compat.start_global_capture(self._config)
            self._run.controller_cpu_seconds = time.process_time() - cpu_started
        if not self.stopping and not self._should_stop():
            self._report_lost()

    def _run_plan(self, plan: Plan, pending: deque[tuple[SuitePlan, bool]]) -> None:
        try:
            self._start_ready(pending, plan.budget)
            while pending or self._live_agents():
                try:
                    agent_id, event = self._transport.events.get(timeout=WATCH_INTERVAL)
                except queue.Empty:
                    self._watch()
                    continue
                self._handle(agent_id, event)
                self._watch()
                if self.stopping or self._should_stop():
                    pending.clear()
                self._start_ready(pending, plan.budget)
        except KeyboardInterrupt as exc:
            self._interrupt_agents(exc)
            raise
        finally:
            try:
                self._transport.stop_all()
            except KeyboardInterrupt:
                self._transport.kill_all()  # a second Ctrl-C: no more grace
                raise
            finally:
                self._replayer.finish()
                self._run.discarded += self._replayer.discarded
                self._run.execution_finished = time.perf_counter()
                gc.unfreeze()
                pids = {a.record.id: a.record.pid for a in self._agents.values()}
                for problem in self._fleet.cleanup(pids):
                    self._reporter.warn(problem)

    def _watch(self) -> None:
        """Between events: the watchdog's look at the agents, what reads off the loop
        brought in, the live view."""
        self._watchdog.check(self._agents.values())
        self._fleet.deliver_fetched()
        if self._live is not None:
            self._draw_live(self._live)

    # --- the live view -------------------------------------------------------------------

    def _start_live(self) -> None:
        terminal = self._config.pluginmanager.get_plugin("terminalreporter")
        writer = compat.terminal_writer(terminal) if self._live_wanted else None
        if writer is None:
            return

        def width() -> int:
            return int(writer.fullwidth)

        stream = LiveStream(compat.writer_stream(writer), width)
        compat.set_writer_stream(writer, stream)  # type: ignore[arg-type]
        self._live = LiveView(stream, width, total=len(self._ledger.unreported()))
        for work in self._work.values():
            if work.durations_known:
                for unit in work.units:
                    share = unit.predicted / len(unit.tests)
                    for test in unit.tests:
                        self._predicted[test] = share
        self._predicted_left = sum(self._predicted.values())

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is None:
            return
        live.close()
        terminal = self._config.pluginmanager.get_plugin("terminalreporter")
        writer = compat.terminal_writer(terminal)
        if writer is not None and compat.writer_stream(writer) is live.stream:  # type: ignore[comparison-overlap]
            compat.set_writer_stream(writer, live.stream.stream)

    def _draw_live(self, live: LiveView) -> None:
        running: list[tuple[str, str | None, float | None]] = []
        for agent_id, agent in self._agents.items():
            if agent.finished:
                continue
            seen = self._running_now.get(agent_id)
            if seen is None:
                running.append((agent_id, None, None))
            else:
                running.append((agent_id, self._items[seen[0]].nodeid, seen[1]))
        terminal = self._config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(terminal, "stats", {})
        failed = len(stats.get("failed", ())) + len(stats.get("error", ()))
        live.tick(
            running,
            done=self._ledger.reported(),
            failed=failed,
            predicted_left=self._predicted_left if self._predicted else None,
            agents=len(running),
        )

    def _interrupt_agents(self, exc: KeyboardInterrupt) -> None:
        """Ctrl-C: interrupt every local agent's test at once, as the terminal interrupts a
        plain run's, and wait briefly for what they report (the results that finished, where
        each test was) before the agents are stopped."""
        self._dispatcher.stopping = True
        self._interrupting = True
        self._transport.interrupt_local()
        deadline = time.monotonic() + INTERRUPT_GRACE
        while self._live_agents():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                agent_id, event = self._transport.events.get(timeout=left)
            except queue.Empty:
                break
            agent = self._agents.get(agent_id)
            if agent is None or agent.finished:
                continue
            match event:
                case TestsReported(results=results):
                    with self._replayer.batch():
                        self._tests_reported(agent, results)
                case AgentInterrupted(report=report):
                    if not exc.args:  # (SIGTERM keeps the controller's own message)
                        self._note_interrupt(report)
                case AgentFinished() | AgentFailed() | SessionExited() | ChannelClosed():
                    agent.finished = True
                case AgentAlive() | AgentReady() | TestsReturned() | OutputForwarded():
                    pass
                case _:
                    assert_never(event)

    def _note_interrupt(self, report: SerializedReport | None) -> None:
        if report is None or self._run.interrupt_repr is not None:
            return
        rebuilt = self._config.hook.pytest_report_from_serializable(
            config=self._config, data=report
        )
        self._run.interrupt_repr = getattr(rebuilt, "longrepr", None)

    def _live_agents(self) -> int:
        return sum(1 for agent in self._agents.values() if not agent.finished)

    def _start_ready(self, pending: deque[tuple[SuitePlan, bool]], budget: int) -> None:
        for pool in self._dispatcher.start_ready(pending, budget):
            self._run.suite_started[pool.work.name] = time.perf_counter()
            if self._events is not None:
                self._events.suite_started(pool.work.name)
        if self._dispatcher.should_grow(pending) and not self._should_stop():
            for name, count in self._dispatcher.grow(budget, self._run.agents).items():
                self._run.agents_added[name] = self._run.agents_added.get(name, 0) + count
        self._apply()

    def _apply(self) -> None:
        """Carry out the dispatcher's decisions (those they lead to included), in order."""
        while self._dispatcher.outbox:
            for decision in self._dispatcher.take_decisions():
                self._carry_out(decision)
        if self._events is not None:
            for name, pool in self._pools.items():
                for thief, victim, tests in pool.queue.take_steals():
                    self._events.steal(name, agent=thief, victim=victim, tests=tests)

    def _carry_out(self, decision: Decision) -> None:
        match decision:
            case Send(agent_id=agent_id, command=command):
                self._agents[agent_id].link.send(command)
            case StartAgents(agents=wanted):
                self._start_agents(list(wanted))
            case _:
                assert_never(decision)

    def _start_agents(self, wanted: list[tuple[str, str]]) -> None:
        places = {agent_id: self._fleet.place(agent_id) for _, agent_id in wanted}
        links = self._transport.start(
            [(agent_id, places[agent_id].spec) for _, agent_id in wanted], self._fork_child
        )
        for (suite, agent_id), link in zip(wanted, links, strict=True):
            place = places[agent_id]
            pid = None if place.remote else link.pid
            record = AgentRecord(agent_id, suite, place.host, link.spawn_started, pid=pid)
            self._run.agents[agent_id] = record
            agent = AgentState(record, link, suite)
            self._agents[agent_id] = agent
            if self._events is not None:
                self._events.agent_started(
                    agent_id, suite=suite, host=place.host, replaces=self._replacing
                )
            work = self._pools[suite].work
            link.send(
                StartSession(
                    protocol=PROTOCOL_VERSION,
                    agent_id=agent_id,
                    suite=suite,
                    run_id=self._run.run_id,
                    total_agents=self._total_agents,
                    args=self._args,
                    invocation_dir=str(self._config.invocation_params.dir),
                    sys_path=self._sys_path,
                    basetemp=os.path.join(self._basetemp, agent_id),
                    tests=tuple(work.tests),
                    nodeids=()
                    if place.spec == FORK
                    else tuple(self._items[i].nodeid for i in work.tests),
                    files=work.files,
                    forward_output=self._forward_output,
                    parent_pid=0 if place.remote else os.getpid(),
                    status_dir=str(self._status_dir),
                    coverage=self._coverage,
                    remote=place.remote,
                    rootdir=str(self._config.rootpath),
                    host_root=place.host_root,
                    host_dir=place.host_dir,
                    worker_input=self._worker_input(),
                    rerun_crashes=self._recovery.rerun_crashes(work.tests),
                )
            )

    def _worker_input(self) -> tuple[tuple[str, object], ...]:
        """What pytest-xdist's controller gives a worker, for plugins that look for it."""
        if not self._xdist_compat:
            return ()
        given: dict[str, object] = {
            "workerid": f"gw{next(self._worker_numbers)}",
            "workercount": self._total_agents,
            "testrunuid": self._run.run_id,
            "mainargv": tuple(sys.argv),
        }
        return tuple(given.items())

    # --- events -------------------------------------------------------------------------

    def _handle(self, agent_id: str, event: Event) -> None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return  # a late event from an agent of an earlier wave
        agent.last_seen = time.perf_counter()
        match event:
            case AgentAlive():
                pass
            case AgentReady(
                protocol=protocol,
                pid=pid,
                missing=missing,
                missing_reason=reason,
                host_root=host_root,
            ):
                if protocol != PROTOCOL_VERSION:
                    raise AgentInternalError(
                        f"agent {agent_id} speaks protocol {protocol}, "
                        f"the controller {PROTOCOL_VERSION}"
                    )
                agent.record.pid = pid
                agent.record.ready_at = time.perf_counter()
                agent.ready = True
                if self._events is not None:
                    self._events.agent_ready(agent_id, pid=pid)
                agent.host_root = host_root
                if missing:
                    self._reporter.warn(
                        f"{agent_id} on {agent.record.host}: {reason.splitlines()[0]}"
                    )
                for index in missing:
                    if self._ledger.record(index):
                        self._replayer.failure(self._items[index], reason, agent_id)
                self._config.hook.pytest_agents_agent_started(
                    config=self._config, agent=agent.record
                )
                self.dispatch(agent)
            case TestsReported(results=results):
                with self._replayer.batch():
                    self._tests_reported(agent, results)
            case TestsReturned(units=units):
                self._tests_returned(agent, units)
            case OutputForwarded(text=text):
                self._reporter.forward(agent_id, text)
            case AgentFinished(
                peak_rss_kb=peak,
                warnings=session_warnings,
                coverage_seconds=coverage_seconds,
                coverage_data=coverage_data,
            ):
                agent.record.peak_rss_kb = peak
                if self._coverage is not None:
                    agent.record.coverage_seconds = coverage_seconds
                if coverage_data and self._coverage_sink is not None:
                    self._coverage_sink(agent_id, dict(coverage_data), agent.host_root)
                for data in session_warnings:
                    self._replayer.warning(data)
                self.agent_ended(agent)
            case AgentFailed(traceback=tb):
                raise AgentInternalError(f"agent {agent_id} failed:\n{tb}")
            case AgentInterrupted(report=report):
                # A test's own KeyboardInterrupt (or a signal sent to the agent alone) ends
                # the run, as it ends a plain one.
                self._note_interrupt(report)
                raise KeyboardInterrupt
            case SessionExited(reason=reason, returncode=returncode):
                self._replayer.finish()  # what came before it, in order
                pytest.exit(reason, returncode)
            case ChannelClosed(error=error):
                if not agent.finished:
                    self._recovery.agent_crashed(agent, self._pools[agent.suite], error)
            case _:
                assert_never(event)

    def _tests_reported(
        self,
        agent: AgentState,
        results: Sequence[TestResult],
    ) -> None:
        record = agent.record
        for result in results:
            index = result.test
            self._dispatcher.tests_reported(agent, index, result.busy)
            if self._live is not None:
                self._predicted_left -= self._predicted.get(index, 0.0)
                seen = self._running_now.get(record.id)
                if seen is not None and seen[0] == index:
                    del self._running_now[record.id]
            if (self.stopping and not self._interrupting) or self._should_stop():
                # -x/--maxfail: a plain run would not have run what finished after the limit.
                self._run.discarded += 1
                continue
            if self._ledger.record(index):
                self._replayer.test(
                    self._items[index], result.reports, result.passed, result.warnings, record.id
                )
            else:
                self._run.duplicates.append(self._items[index].nodeid)
        if self._should_stop():
            self._stop_everything()
        elif not self._interrupting:
            self.dispatch(agent)

    def dispatch(self, agent: AgentState) -> None:
        """Keep the agent's window filled, or tell it to finish (``Dispatcher.dispatch``)."""
        self._dispatcher.dispatch(agent)
        self._apply()

    def _tests_returned(self, agent: AgentState, units: Sequence[tuple[int, ...]]) -> None:
        returned = self._dispatcher.tests_returned(agent, units)
        self._run.tests_returned += returned
        if self._events is not None and returned:
            self._events.tests_given_back(agent.suite, agent=agent.record.id, tests=returned)
        self._apply()

    def _test_running(self, agent: AgentState, index: int, since: float) -> None:
        """The watchdog saw ``agent`` run test ``index`` since ``since`` (wall clock)."""
        self._running_now[agent.record.id] = (index, since)
        if self._events is not None:
            self._events.test_started(self._items[index].nodeid, agent=agent.record.id, start=since)

    def serve_waiting(self, pool: PoolState) -> None:
        """Dispatch the pool's agents that wait for work, those holding fewest first."""
        self._dispatcher.serve_waiting(pool)
        self._apply()

    def agent_ended(self, agent: AgentState, *, crashed: bool = False) -> None:
        """The agent is gone (finished or dead): free its slot; its held tests go back."""
        agent.record.finished_at = time.perf_counter()
        self._transport.stop(agent.record.id)
        if not crashed:
            # What the agent wrote to its stderr outside any test's capture (after a crash,
            # recovery put it in the report of the test that died).
            written = take_stderr(self._status_dir, agent.record.id)
            if written:
                self._reporter.agent_stderr(written)
        self._fleet.release(agent.record.id, crashed=agent.record.crashed)
        self._config.hook.pytest_agents_agent_finished(config=self._config, agent=agent.record)
        if self._events is not None:
            record = agent.record
            self._events.agent_finished(
                record.id, tests=record.tests, busy_seconds=record.busy_seconds, crashed=crashed
            )
        pool = self._pools[agent.suite]
        if pool.agents <= {agent.record.id}:
            self._run.suite_finished[agent.suite] = time.perf_counter()
            if self._events is not None:
                self._events.suite_finished(agent.suite)
        startable = self._dispatcher.agent_ended(agent, crashed=crashed)
        self._apply()
        if not startable:
            # Its last agent finished (told to, when the suite degraded) with work left,
            # and no gateway is free for another: say so rather than lose the tests.
            self._recovery.give_up(pool, "no agent could be started to run it")

    def replace(self, pool: PoolState, *, replaces: str | None = None) -> bool:
        """Start one more agent for the pool (in place of agent ``replaces``); False when
        no gateway is free for it."""
        self._replacing = replaces
        try:
            started = self._dispatcher.replace(pool)
            self._apply()
        finally:
            self._replacing = None
        return started

    def shut_down(self, agent: AgentState) -> None:
        """Tell the agent to drop what it holds and end (its suite degraded)."""
        self._dispatcher.shut_down(agent, drop_pending=True)
        self._apply()

    def _stop_everything(self) -> None:
        self._dispatcher.stop_everything()
        self._apply()

    def _should_stop(self) -> bool:
        return bool(self._session.shouldfail or self._session.shouldstop)

    def _report_lost(self) -> None:
        for index in self._ledger.unreported():
            item = self._items[index]
            self._run.lost.append(item.nodeid)
            self._ledger.record(index)
            self._replayer.failure(
                item,
                "pytest-parallel-agents lost this test: no agent reported it "
                "(this is a bug in the plugin; please report it)",
                "controller",
            )

    @property
    def reported(self) -> int:
        return self._ledger.reported()


def _rerunfailures_reruns(config: pytest.Config, item: pytest.Item) -> int:
    """How often pytest-rerunfailures reruns ``item`` after a crash; 0 without it.

    Its own ``get_reruns_count`` (``--force-reruns``, the ``flaky`` marker, ``--reruns``, the
    ``reruns`` ini, ``--reruns-mode``): the count its pytest-xdist crash hook goes by. A test
    under ``--rerun-exclude-path`` is never rerun, and a version without that function gets
    the plugin's own crash retries.
    """
    plugin = config.pluginmanager.get_plugin("rerunfailures")
    count = getattr(plugin, "get_reruns_count", None)
    if plugin is None or not callable(count):
        return 0
    excluded = getattr(config.option, "rerun_exclude_path", None) or ()
    if any(item.path.is_relative_to(config.rootpath / path) for path in excluded):
        return 0
    try:
        reruns = count(item)
    except Exception:
        # A marker it cannot read errors on the agent too; the crash is then handled as
        # without rerunfailures rather than ending the controller.
        return 0
    return reruns if isinstance(reruns, int) and reruns > 0 else 0


def _seeds(config: pytest.Config) -> tuple[str, ...]:
    """Options that give a spawned agent the seed the controller drew (pytest-randomly draws
    one per process unless given it; its xdist hook passes the controller's on): the same
    seed, the same order and data in every agent, and the one the header shows."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.has_plugin("randomly") and isinstance(seed, int):
        return (f"--randomly-seed={seed}",)
    return ()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C: agents stopped, reports so far written, exit 2."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
