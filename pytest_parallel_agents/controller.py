"""The controller: runs the plan's waves on agents, feeds them tests, replays what they report."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import queue
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, final

import pytest

from .agent import fork_child_setup
from .fleet import Fleet, HostUnreachable
from .protocol import (
    PROTOCOL_VERSION,
    AgentAlive,
    AgentFailed,
    AgentFinished,
    AgentReady,
    ChannelClosed,
    CoverageRequest,
    OutputForwarded,
    RunTests,
    Shutdown,
    StartSession,
    TestResult,
    TestsReported,
)
from .replay import Ledger, Replayer
from .runstate import AgentRecord, RunState
from .scheduling import SuiteQueue, WorkUnit, hold_limit
from .scoreboard import crash_summary
from .sizing import Plan, RunningPool, SuitePlan, grow
from .transport import FORK, AgentLink, Transport
from .txspecs import TxSpec

# Tests an agent should hold before it needs more; refilled at half, so it never waits.
_MIN_WINDOW: Final = 2
_MAX_WINDOW: Final = 256
# Predicted seconds of work an agent should hold: enough to hide one round trip.
_WINDOW_SECONDS: Final = 0.25
# How often the watchdog looks at running agents (timeouts, heartbeats).
_WATCH_INTERVAL: Final = 0.1
# How long a stuck agent gets to write its stacks before it is killed: the dump is complete
# once the log stopped growing for one poll; a loaded machine may take a while to start it.
_DUMP_GRACE: Final = 3.0
_DUMP_POLL: Final = 0.05
# Agents that die before running anything, this many in a row, end their suite's attempts.
_FRUITLESS_CRASHES: Final = 3


# Where a remote agent's coverage data goes: (agent id, {file name: content}, host root).
CoverageSink = Callable[[str, dict[str, bytes], str], None]


class AgentInternalError(Exception):
    """An agent hit an internal error; its traceback is the message."""


@final
@dataclass
class SuiteWork:
    """One suite's share of the run, as the controller needs it."""

    name: str
    tests: list[int]  # indices into the session's items, in collection order
    units: list[WorkUnit]
    durations_known: bool
    files: tuple[str, ...]


@dataclass
class _Agent:
    record: AgentRecord
    link: AgentLink
    suite: str
    in_flight: deque[int] = field(default_factory=deque)
    shutdown_sent: bool = False
    finished: bool = False
    ready: bool = False
    last_seen: float = field(default_factory=time.perf_counter)
    last_dispatch: float = 0.0  # wall clock (time.time), comparable with the agent's slot
    # Set when the watchdog kills the agent: (test it was stuck in, or None; why).
    stuck: tuple[int | None, str] | None = None
    host_root: str = ""  # a remote agent's root on its host (from AgentReady)


@dataclass
class _Pool:
    work: SuiteWork
    queue: SuiteQueue
    size: int
    plan: SuitePlan
    next_number: int = 0
    done_tests: int = 0
    busy: float = 0.0
    agents: set[str] = field(default_factory=set)
    # Tests that killed an agent, waiting for an agent started after that death.
    retries: deque[tuple[int, float]] = field(default_factory=deque)
    crashed: int = 0
    fruitless: int = 0  # crashes in a row with no test to blame
    degraded: bool = False


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
        timeout: float | None = None,
        timeouts: dict[int, float] | None = None,
        heartbeat: float = 30.0,
        coverage: CoverageRequest | None = None,
        coverage_sink: CoverageSink | None = None,
        tx: Sequence[TxSpec] = (),
        rsync: Sequence[Path] = (),
        rsync_ignore: Sequence[str] = (),
    ) -> None:
        self._config = config
        self._session = session
        self._items = session.items
        self._work = work
        self._run = run
        self._basetemp = basetemp
        self._max_restarts = max_restarts
        self._max_retries = max_retries
        self._timeout = timeout
        self._timeouts = timeouts or {}
        self._heartbeat = heartbeat
        self._coverage = coverage
        self._coverage_sink = coverage_sink
        self._last_watch = 0.0
        # Crash details per test that killed an agent, for its retry and its final report.
        self._crashes: dict[int, list[str]] = {}
        self._status_dir = Path(basetemp) / ".agents"
        self._status_dir.mkdir(parents=True, exist_ok=True)
        self._spec = FORK if start_method == "fork" else "popen"
        self._fork_child = fork_child_setup(config, session)
        self._replayer = Replayer(config)
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
        self._agents: dict[str, _Agent] = {}
        self._pools: dict[str, _Pool] = {}
        self._stopping = False
        self._exclusive_running = False
        self._sys_path = tuple(sys.path)
        self._args = tuple(config.invocation_params.args)
        self._total_agents = run.plan.peak_agents if run.plan else 1
        self._forward_output = config.getoption("capture") == "no"
        self._terminal = config.pluginmanager.get_plugin("terminalreporter")

    # --- the run ------------------------------------------------------------------------

    def run(self, plan: Plan) -> None:
        """Run every suite of the plan; always leaves no agent behind.

        Suites start in the plan's wave order, each as soon as enough of the budget is free
        (a finished suite's slots go to the next one without waiting for its whole wave);
        an exclusive suite starts only when nothing runs, and nothing starts beside it.
        """
        self._run.execution_started = time.perf_counter()
        if self._spec == FORK:
            # Keep the collector from touching (and so copying) every inherited object. No
            # gc.collect() first: on 50,000 tests it holds the first fork back ~0.1 s, to free
            # a little garbage that the agents, and the controller after unfreeze, free anyway.
            gc.freeze()
        pending = deque((suite, wave.exclusive) for wave in plan.waves for suite in wave.suites)
        capture = self._config.pluginmanager.get_plugin("capturemanager")
        if self._spec == FORK and capture is not None:
            # pytest's global capture files would be shared by every fork (one file offset
            # for all agents' output): stop it here, each forked agent starts its own.
            capture.stop_global_capturing()
        try:
            with _terminate_as_interrupt():
                try:
                    self._fleet.prepare()
                except HostUnreachable as exc:
                    raise pytest.UsageError(str(exc)) from None
                self._run_plan(plan, pending)
        finally:
            if self._spec == FORK and capture is not None:
                capture.start_global_capturing()
                capture.suspend_global_capture()
        if not self._stopping and not self._should_stop():
            self._report_lost()

    def _run_plan(self, plan: Plan, pending: deque[tuple[SuitePlan, bool]]) -> None:
        try:
            self._start_ready(pending, plan.budget)
            while pending or self._live_agents():
                try:
                    agent_id, event = self._transport.events.get(timeout=_WATCH_INTERVAL)
                except queue.Empty:
                    self._watch()
                    continue
                self._handle(agent_id, event)
                self._watch()
                if self._stopping or self._should_stop():
                    pending.clear()
                self._start_ready(pending, plan.budget)
        finally:
            try:
                self._transport.stop_all()
            except KeyboardInterrupt:
                self._transport.kill_all()  # a second Ctrl-C: no more grace
                raise
            finally:
                self._run.execution_finished = time.perf_counter()
                gc.unfreeze()
                pids = {a.record.id: a.record.pid for a in self._agents.values()}
                for problem in self._fleet.cleanup(pids):
                    self._warn(problem)

    def _live_agents(self) -> int:
        return sum(1 for agent in self._agents.values() if not agent.finished)

    def _start_ready(self, pending: deque[tuple[SuitePlan, bool]], budget: int) -> None:
        starts: list[_Pool] = []
        while pending:
            suite, exclusive = pending[0]
            live = self._live_agents() + sum(pool.size for pool in starts)
            if self._exclusive_running and live:
                break
            if exclusive and live:
                break
            if live and live + suite.agents > budget:
                break
            names = [f"{suite.name}-{n}" for n in range(suite.agents)]
            if not self._fleet.reserve(suite.name, names):
                break  # its hosts are busy with other suites
            pending.popleft()
            self._exclusive_running = exclusive
            work = self._work[suite.name]
            pool = _Pool(
                work,
                SuiteQueue(work.units, names, durations_known=work.durations_known),
                suite.agents,
                suite,
            )
            pool.next_number = suite.agents
            self._pools[suite.name] = pool
            starts.append(pool)
            self._run.suite_started[suite.name] = time.perf_counter()
            if exclusive:
                break
        if starts:
            self._start_agents(
                [
                    (pool.work.name, f"{pool.work.name}-{n}")
                    for pool in starts
                    for n in range(pool.size)
                ]
            )
        # Growing would take budget a waiting suite needs, unless it is exclusive: that one
        # waits for everything else to end, which growing brings sooner.
        waiting_exclusive = bool(pending) and pending[0][1]
        if not pending or waiting_exclusive:
            self._grow(budget)

    def _grow(self, budget: int) -> None:
        """Give budget that a finished suite freed to suites still running (work-conserving)."""
        free = budget - self._live_agents()
        if free <= 0 or self._stopping or self._should_stop():
            return
        running: list[RunningPool] = []
        for name, pool in self._pools.items():
            if pool.degraded or not pool.done_tests or not pool.queue.total_pending:
                continue
            agents = [self._agents[a].record for a in pool.agents]
            starts = [s for record in agents if (s := record.spawn_seconds) is not None]
            if not starts:
                continue
            plan = pool.plan
            pending = pool.queue.total_pending
            running.append(
                RunningPool(
                    name,
                    len(agents),
                    pending,
                    pool.queue.pending_units,
                    pending * pool.busy / pool.done_tests,
                    sum(starts) / len(starts),
                    plan.items,
                    plan.min_items,
                    min(plan.max_agents or budget, budget),
                )
            )
        for name, count in grow(running, free).items():
            pool = self._pools[name]
            for _ in range(count):
                if not self._replace(pool):
                    break
                pool.size += 1
                self._run.agents_added[name] = self._run.agents_added.get(name, 0) + 1

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
            agent = _Agent(record, link, suite)
            self._agents[agent_id] = agent
            self._pools[suite].agents.add(agent_id)
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
                )
            )

    # --- events -------------------------------------------------------------------------

    def _handle(self, agent_id: str, event: object) -> None:
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
                agent.host_root = host_root
                if missing:
                    self._warn(f"{agent_id} on {agent.record.host}: {reason.splitlines()[0]}")
                for index in missing:
                    if self._ledger.record(index):
                        self._replayer.failure(self._items[index], reason, agent_id)
                self._config.hook.pytest_agents_agent_started(
                    config=self._config, agent=agent.record
                )
                self._dispatch(agent)
            case TestsReported(results=results):
                with self._replayer.batch():
                    self._tests_reported(agent, results)
            case OutputForwarded(text=text):
                self._forward(agent_id, text)
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
                self._agent_ended(agent)
            case AgentFailed(traceback=tb):
                raise AgentInternalError(f"agent {agent_id} failed:\n{tb}")
            case ChannelClosed(error=error):
                if not agent.finished:
                    self._agent_crashed(agent, error)

    def _tests_reported(
        self,
        agent: _Agent,
        results: Sequence[TestResult],
    ) -> None:
        pool = self._pools[agent.suite]
        record = agent.record
        for index, reports, passed, warning_data, busy in results:
            if agent.in_flight and agent.in_flight[0] == index:
                agent.in_flight.popleft()
            else:
                with contextlib.suppress(ValueError):
                    agent.in_flight.remove(index)
            record.tests += 1
            record.busy_seconds += busy
            pool.done_tests += 1
            pool.busy += busy
            pool.fruitless = 0
            if self._stopping or self._should_stop():
                # -x/--maxfail: a plain run would not have run what finished after the limit.
                self._run.discarded += 1
                continue
            if self._ledger.record(index):
                self._replayer.test(self._items[index], reports, passed, warning_data, record.id)
            else:
                self._run.duplicates.append(self._items[index].nodeid)
        if self._should_stop():
            self._stop_everything()
        else:
            self._dispatch(agent)

    def _dispatch(self, agent: _Agent) -> None:
        """Keep the agent's window filled; tell it to finish when its suite has nothing left.

        The agent runs a test only once it knows the next one (or that none will come), so
        after every dispatch it must hold two tests or have been told to shut down.
        """
        if agent.shutdown_sent or agent.finished:
            return
        if self._stopping:
            agent.shutdown_sent = True
            agent.link.send(Shutdown(drop_pending=True))
            return
        pool = self._pools[agent.suite]
        limit = hold_limit(self._window(pool), pool.queue.total_pending, max(1, len(pool.agents)))
        if len(agent.in_flight) > limit // 2:
            return
        want = limit - len(agent.in_flight)
        batch: list[int] = []
        while pool.retries and agent.record.started_at > pool.retries[0][1]:
            batch.append(pool.retries.popleft()[0])
            want -= 1
        while want > 0 or len(agent.in_flight) + len(batch) < 2:
            # Stealing only when running dry: filling a window by stealing would take work
            # from agents about to start, and scatter this agent over the collection.
            dry = len(agent.in_flight) + len(batch) < 2
            taken = pool.queue.take(agent.record.id, max(1, want), steal=dry)
            if not taken:
                break
            want -= len(taken)
            batch.extend(i for i in taken if not self._ledger.done(i))
        if batch:
            agent.in_flight.extend(batch)
            agent.last_dispatch = time.time()
            agent.link.send(RunTests(tuple(batch)))
        if len(agent.in_flight) <= 1 and pool.queue.empty and not self._retries_for(agent, pool):
            # Nothing left it could be given (retries wait for a fresh agent): it may run its
            # last test with nextitem=None. Waiting on would hold that test back for good.
            agent.shutdown_sent = True
            agent.link.send(Shutdown(drop_pending=False))

    @staticmethod
    def _retries_for(agent: _Agent, pool: _Pool) -> bool:
        """Whether the pool holds a retry this agent may run (it started after that crash)."""
        return any(agent.record.started_at > died_at for _, died_at in pool.retries)

    def _window(self, pool: _Pool) -> int:
        if pool.degraded:
            return _MIN_WINDOW
        if pool.done_tests:
            mean = pool.busy / pool.done_tests
        else:
            return 4
        if mean <= 0:
            return _MAX_WINDOW
        return max(_MIN_WINDOW, min(_MAX_WINDOW, math.ceil(_WINDOW_SECONDS / mean) * 2))

    def _agent_ended(self, agent: _Agent, *, crashed: bool = False) -> None:
        agent.finished = True
        agent.record.finished_at = time.perf_counter()
        self._transport.stop(agent.record.id)
        self._fleet.release(agent.record.id, crashed=agent.record.crashed)
        self._config.hook.pytest_agents_agent_finished(config=self._config, agent=agent.record)
        pool = self._pools[agent.suite]
        pool.agents.discard(agent.record.id)
        if not pool.agents:
            self._run.suite_finished[agent.suite] = time.perf_counter()
        if agent.in_flight and not self._stopping:
            # A clean exit with tests outstanding: they go back to the suite.
            self._requeue(pool, list(agent.in_flight))
            agent.in_flight.clear()
        if (
            not crashed
            and not self._stopping
            and not pool.agents
            and (not pool.queue.empty or pool.retries)
            and not self._replace(pool)
        ):
            # Its last agent finished (told to, when the suite degraded) with work left,
            # and no gateway is free for another: say so rather than lose the tests.
            self._give_up(pool, "no agent could be started to run it")

    def _agent_crashed(self, agent: _Agent, error: str) -> None:
        """An agent died: blame the test it was running, requeue the rest, replace it."""
        record = agent.record
        record.crashed = True
        how = agent.link.exit_detail(error)
        record.exit_detail = f"{record.exit_detail}; {how}" if record.exit_detail else how
        died_at = time.perf_counter()
        pool = self._pools[agent.suite]
        if agent.stuck is not None:
            running, why = agent.stuck
        else:
            running, why = self._fleet.read_slot(record.id, self._status_dir)[0], ""
        if self._coverage_sink is not None:
            # What a dead remote agent measured is still on its host, up to its last result.
            files, root = self._fleet.remote_coverage(record.id)
            if files:
                self._coverage_sink(record.id, files, agent.host_root or root)
        sent = list(agent.in_flight)
        agent.in_flight.clear()
        if running is None and sent and not self._fleet.sees_slot(record.id):
            # No slot to read (a socket gateway): agents run in order, so the first test not
            # reported is the likeliest culprit (or finished with its report still buffered).
            running = sent[0]
        victim = running if running in sent else None
        # Tests before the victim ran, but their reports died in the agent's buffer.
        requeue = [i for i in sent if i != victim]
        self._agent_ended(agent, crashed=True)
        if victim is not None:
            self._crashed_test(pool, victim, record, died_at, why)
        if self._stopping:
            pool.queue.remove_agent(record.id)
            return
        pool.queue.requeue(requeue)
        # Then what it had not been sent yet (remove_agent puts that in front itself, whole:
        # adding it to ``requeue`` as well would run those tests twice).
        pool.queue.remove_agent(record.id)
        pool.crashed += 1
        pool.fruitless = 0 if victim is not None else pool.fruitless + 1
        if pool.queue.empty and not pool.retries:
            return
        if pool.fruitless >= _FRUITLESS_CRASHES:
            if pool.agents:
                # Its other agents carry on without replacements (a host dropped, say); the
                # tests waiting for a fresh agent may run on any of them now.
                pool.retries = deque((index, -math.inf) for index, _ in pool.retries)
                for other in list(pool.agents):
                    self._dispatch(self._agents[other])
                return
            self._give_up(pool, f"{pool.fruitless} agents died in a row before running a test")
            return
        if not pool.degraded and (
            pool.crashed > pool.size / 2 or self._run.restarts >= self._max_restarts
        ):
            self._degrade(pool, f"{pool.crashed} of its agents died")
        if pool.degraded and any(not self._agents[a].shutdown_sent for a in pool.agents):
            return  # the suite's single remaining agent carries on
        self._run.restarts += 1
        if not self._replace(pool) and not pool.agents:
            self._give_up(pool, "no agent could be started to run it")

    def _replace(self, pool: _Pool) -> bool:
        """Start one more agent for the pool; False when no gateway is free for it."""
        replacement = f"{pool.work.name}-{pool.next_number}"
        if not self._fleet.reserve(pool.work.name, [replacement]):
            return False
        pool.next_number += 1
        pool.queue.add_agent(replacement)
        self._start_agents([(pool.work.name, replacement)])
        return True

    def _degrade(self, pool: _Pool, why: str) -> None:
        """The suite's remaining tests run on one agent, one after another.

        Every crash there still reports (or retries) the test that caused it, so the suite
        ends with every test reported; the restart budget no longer applies to it.
        """
        pool.degraded = True
        self._run.mode = "degraded"
        self._run.degraded[pool.work.name] = why
        for agent_id in pool.agents:
            agent = self._agents[agent_id]
            if not agent.shutdown_sent and not agent.finished:
                agent.shutdown_sent = True
                agent.link.send(Shutdown(drop_pending=True))

    def _crashed_test(
        self, pool: _Pool, index: int, record: AgentRecord, died_at: float, timeout: str
    ) -> None:
        traceback = crash_summary(
            self._fleet.read_crash_log(record.id, self._status_dir), stuck=bool(timeout)
        )
        if timeout:
            # A timeout is the test's own doing: reported at once, never retried.
            if self._ledger.record(index):
                self._replayer.failure(
                    self._items[index],
                    f"{timeout}; agent {record.id} (pid {record.pid}) was killed\n{traceback}",
                    record.id,
                )
            return
        detail = f"agent {record.id} (pid {record.pid}) {record.exit_detail}"
        if traceback:
            detail += f"\n{traceback}"
        crashes = self._crashes.setdefault(index, [])
        crashes.append(detail)
        if len(crashes) <= self._max_retries and not self._stopping:
            # Retried once more, on an agent started after this death (a fresh one).
            self._run.retries += 1
            self._run.retried.append(self._items[index].nodeid)
            pool.retries.append((index, died_at))
            return
        if self._ledger.record(index):
            attempts = "\n\n".join(f"attempt {n}: {text}" for n, text in enumerate(crashes, 1))
            self._replayer.failure(
                self._items[index],
                f"this test killed the agent running it ({len(crashes)} "
                f"attempt{'s' if len(crashes) > 1 else ''}, never tried again):\n\n{attempts}",
                record.id,
            )

    def _watch(self) -> None:
        """Kill agents stuck past a test's time limit, or that stopped answering."""
        now = time.perf_counter()
        if now - self._last_watch < _WATCH_INTERVAL:
            return
        self._last_watch = now
        wall = time.time()
        for agent in list(self._agents.values()):
            if agent.finished or agent.stuck is not None:
                continue
            if not agent.ready:
                # Agents speak (heartbeats) from the moment their session starts: one silent
                # since its start never received StartSession whole, or hangs before it.
                if now - agent.last_seen > self._heartbeat:
                    self._kill_stuck(agent, None, f"no message for {self._heartbeat:g} s")
                continue
            running, since = self._fleet.read_slot(agent.record.id, self._status_dir, fresh=False)
            limit = self._timeouts.get(running, self._timeout) if running is not None else None
            if running is not None and limit and wall - since > limit:
                self._kill_stuck(agent, running, f"timeout: still running after {limit:g} s")
            elif running is None and now - agent.last_seen > self._heartbeat:
                # (A running test may hold the GIL in C for long; its time limit governs it.)
                self._kill_stuck(agent, None, f"no message for {self._heartbeat:g} s")
            elif (
                running is None
                and (agent.in_flight or agent.shutdown_sent)
                and wall - max(since, agent.last_dispatch) > self._heartbeat
            ):
                # Between tests with work to do, or told to finish and not finishing.
                self._kill_stuck(agent, None, f"idle for {self._heartbeat:g} s with work left")

    def _kill_stuck(self, agent: _Agent, index: int | None, why: str) -> None:
        """Have the agent write its stacks (faulthandler on SIGUSR1), then kill it.

        What follows is the ordinary crash path: ChannelClosed, blame, requeue, replacement.
        """
        agent.stuck = (index, why if index is not None else "")
        if index is None:
            agent.record.exit_detail = f"stopped answering: {why}"
        agent_id, pid = agent.record.id, agent.record.pid
        if hasattr(signal, "SIGUSR1") and self._fleet.signal(agent_id, pid, signal.SIGUSR1):
            self._await_dump(agent_id)
        if not self._fleet.signal(agent_id, pid, signal.SIGKILL):
            # Nothing to signal (a socket gateway): ending the gateway is all there is.
            if agent.link.process is not None:
                agent.link.process.kill()
            self._transport.stop(agent_id)

    def _await_dump(self, agent_id: str) -> None:
        deadline = time.monotonic() + _DUMP_GRACE
        size = -1
        while time.monotonic() < deadline:
            time.sleep(_DUMP_POLL)
            now = len(self._fleet.read_crash_log(agent_id, self._status_dir))
            if now and now == size:
                return
            size = now

    def _requeue(self, pool: _Pool, tests: list[int]) -> None:
        pool.queue.requeue(tests)
        for other in pool.agents:
            self._dispatch(self._agents[other])

    def _give_up(self, pool: _Pool, why: str) -> None:
        """No agent is left for this suite: report what remains as failed, never drop it."""
        leftovers = pool.queue.drain() + [index for index, _ in pool.retries]
        pool.retries.clear()
        for index in leftovers:
            if self._ledger.record(index):
                self._replayer.failure(self._items[index], f"not run: {why}", "controller")

    def _stop_everything(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for agent in self._agents.values():
            if not agent.finished and not agent.shutdown_sent:
                agent.shutdown_sent = True
                agent.link.send(Shutdown(drop_pending=True))

    def _should_stop(self) -> bool:
        return bool(self._session.shouldfail or self._session.shouldstop)

    def _warn(self, text: str) -> None:
        line = f"WARNING: pytest-parallel-agents: {text}"
        if self._terminal is not None:
            self._terminal.write_line(line, yellow=True)
        else:
            print(line)

    def _forward(self, agent_id: str, text: str) -> None:
        line = f"[{agent_id}] {text.rstrip(chr(10))}"
        if self._terminal is not None:
            self._terminal.write_line(line)
        else:
            print(line)

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
