"""When an agent dies: blame the test it ran, retry or report it, requeue the rest, replace it.

SPEC §5: the test an agent died in is retried on a fresh agent at most ``max_retries`` times
(a timeout never: that is the test's own doing), then reported failed with the exit status
and faulthandler's stack; a suite that lost more than half its agents, or ran out of
restarts, runs its remaining tests on one agent; a test no agent can run is reported as
failed, never dropped. A test pytest-rerunfailures reruns is rerun as it reruns a crashed
pytest-xdist worker's test instead (``after_crash``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol, final

import pytest

from pytest_parallel_agents.controller.events import RunEvents
from pytest_parallel_agents.controller.fleet import Fleet
from pytest_parallel_agents.controller.pools import AgentState, PoolState
from pytest_parallel_agents.controller.replay import Ledger, Replayer
from pytest_parallel_agents.controller.runstate import AgentRecord, RunState
from pytest_parallel_agents.transport.protocol import assert_never
from pytest_parallel_agents.transport.scoreboard import (
    crash_summary,
    take_stderr,
    timed_out_by_plugin,
)

# Agents that die before running anything, this many in a row, end their suite's attempts.
_FRUITLESS_CRASHES: Final = 3

# Where a remote agent's coverage data goes: (agent id, {file name: content}, host root).
CoverageSink = Callable[[str, dict[str, bytes], str], None]


@final
@dataclass(frozen=True)
class CrashVerdict:
    """What becomes of a test that has just killed the agent running it."""

    # "retry": run again on a fresh agent, this attempt unreported; "rerun": the same, this
    # attempt reported as pytest-rerunfailures' rerun; "fail": reported failed, never run again.
    action: Literal["retry", "rerun", "fail"]
    # Whether this crash weighs on the suite's health (a suite that lost over half its
    # agents degrades).
    counts_against_suite: bool


def after_crash(
    crashes: int, *, reruns: int, max_retries: int, stopping: bool = False
) -> CrashVerdict:
    """The policy for a test that killed its agent, ``crashes`` times now.

    A test pytest-rerunfailures gives ``reruns`` (> 0) is treated as rerunfailures treats a
    test that crashed a pytest-xdist worker: each crash up to ``reruns`` is a rerun, the one
    after is its failure; ``--agents-retries`` does not apply to it. Only its first crash
    counts against the suite: the same test dying on each rerun says nothing more of the
    suite's health. Any other test is retried silently up to ``max_retries`` times. Once the
    run is stopping nothing runs again.
    """
    if reruns > 0:
        again = crashes <= reruns and not stopping
        return CrashVerdict("rerun" if again else "fail", counts_against_suite=crashes == 1)
    again = crashes <= max_retries and not stopping
    return CrashVerdict("retry" if again else "fail", counts_against_suite=True)


@final
@dataclass(frozen=True)
class PoolVerdict:
    """What becomes of a suite's pool once one of its agents died."""

    # Whether the suite degrades now: its agents are told to finish, one agent runs the rest.
    degrade: bool
    # "nothing": no work left; "spread": no replacement (agents keep dying before running a
    # test), the others carry on and may take the retries; "give_up": no agent is left to
    # run what remains, which is reported; "carry_on": the degraded suite's one agent goes
    # on; "replace": start an agent in its place.
    then: Literal["nothing", "spread", "give_up", "carry_on", "replace"]


def after_agent_lost(
    *,
    work_left: bool,
    fruitless: int,
    others: int,
    degraded: bool,
    serving: bool,
    crashed: int,
    size: int,
    restarts: int,
    max_restarts: int,
) -> PoolVerdict:
    """The policy for a pool that just lost an agent (SPEC §5).

    ``fruitless``: agents that died in a row before running a test; ``others``: the pool's
    agents still there; ``serving``: one of them was not told to finish (the degraded
    suite's agent); ``crashed``: agents the pool lost, of ``size``; ``restarts``: agents
    the run replaced so far, of ``max_restarts``.
    """
    if not work_left:
        return PoolVerdict(False, "nothing")
    if fruitless >= _FRUITLESS_CRASHES:
        return PoolVerdict(False, "spread" if others else "give_up")
    if degraded and serving:
        return PoolVerdict(False, "carry_on")
    degrade = not degraded and (crashed > size / 2 or restarts >= max_restarts)
    return PoolVerdict(degrade, "replace")


class Pools(Protocol):
    """What recovery needs of the controller: its agents, and starting and feeding them."""

    @property
    def stopping(self) -> bool: ...

    def agent(self, agent_id: str) -> AgentState: ...

    def agent_ended(self, agent: AgentState, *, crashed: bool = False) -> None: ...

    def replace(self, pool: PoolState, *, replaces: str | None = None) -> bool: ...

    def dispatch(self, agent: AgentState) -> None: ...

    def serve_waiting(self, pool: PoolState) -> None: ...

    def shut_down(self, agent: AgentState) -> None: ...

    def crash_reruns(self, index: int) -> int: ...


@final
class Recovery:
    """The crash path of one run; every decision about dead agents and their tests."""

    def __init__(
        self,
        pools: Pools,
        *,
        items: Sequence[pytest.Item],
        run: RunState,
        fleet: Fleet,
        ledger: Ledger,
        replayer: Replayer,
        status_dir: Path,
        max_restarts: int,
        max_retries: int,
        coverage_sink: CoverageSink | None,
        events: RunEvents | None = None,
    ) -> None:
        self._pools = pools
        self._events = events
        self._items = items
        self._run = run
        self._fleet = fleet
        self._ledger = ledger
        self._replayer = replayer
        self._status_dir = status_dir
        self._max_restarts = max_restarts
        self._max_retries = max_retries
        self._coverage_sink = coverage_sink
        # Crash details per test that killed an agent, for its retry and its final report.
        self._crashes: dict[int, list[str]] = {}

    def agent_crashed(self, agent: AgentState, pool: PoolState, error: str) -> None:
        """An agent died: blame the test it was running, requeue the rest, replace it."""
        record = agent.record
        record.crashed = True
        how = agent.link.exit_detail(error)
        record.exit_detail = f"{record.exit_detail}; {how}" if record.exit_detail else how
        died_at = time.perf_counter()
        if agent.stuck is not None:
            running, why = agent.stuck
        else:
            running, why = self._fleet.read_slot(record.id, self._status_dir)[0], ""
        stderr = take_stderr(self._status_dir, record.id)
        if not why and timed_out_by_plugin(stderr):
            why = "Timeout: pytest-timeout ended the agent"
        if self._coverage_sink is not None:
            # What a dead remote agent measured is still on its host, up to its last result:
            # fetched off the loop, delivered by the time the run ends.
            sink, host_root, agent_id = self._coverage_sink, agent.host_root, record.id
            self._fleet.fetch_remote_coverage(
                agent_id, lambda files, root: sink(agent_id, files, host_root or root)
            )
        sent = list(agent.in_flight)
        agent.in_flight.clear()
        if running is None and sent and not self._fleet.sees_slot(record.id):
            # No slot to read (a socket gateway): agents run in order, so the first test not
            # reported is the likeliest culprit (or finished with its report still buffered).
            running = sent[0]
        victim = running if running in sent else None
        # Tests before the victim ran, but their reports died in the agent's buffer.
        requeue = [i for i in sent if i != victim]
        if self._events is not None:
            self._events.agent_crashed(
                record.id,
                test=None if victim is None else self._items[victim].nodeid,
                detail=why or record.exit_detail,
            )
        self._pools.agent_ended(agent, crashed=True)
        counts = True
        if victim is not None:
            counts = self._crashed_test(pool, victim, record, died_at, why, stderr)
        if self._pools.stopping:
            pool.queue.remove_agent(record.id)
            return
        pool.queue.requeue(requeue)
        # Then what it had not been sent yet (remove_agent puts that in front itself, whole:
        # adding it to ``requeue`` as well would run those tests twice).
        pool.queue.remove_agent(record.id)
        # Agents that ran dry (waiting, perhaps, for tests this one was asked to give back).
        self._pools.serve_waiting(pool)
        if not why and counts:
            pool.crashed += 1  # a test past its time limit says nothing of the suite's health
        pool.fruitless = 0 if victim is not None else pool.fruitless + 1
        verdict = after_agent_lost(
            work_left=not pool.queue.empty or bool(pool.retries),
            fruitless=pool.fruitless,
            others=len(pool.agents),
            degraded=pool.degraded,
            serving=any(not self._pools.agent(a).shutdown_sent for a in pool.agents),
            crashed=pool.crashed,
            size=pool.size,
            restarts=self._run.restarts,
            max_restarts=self._max_restarts,
        )
        if verdict.degrade:
            self._degrade(pool, f"{pool.crashed} of its agents died")
        match verdict.then:
            case "nothing" | "carry_on":
                pass
            case "spread":
                # Its other agents carry on without replacements (a host dropped, say); the
                # tests waiting for a fresh agent may run on any of them now.
                pool.retries = deque((index, -math.inf) for index, _ in pool.retries)
                for other in list(pool.agents):
                    self._pools.dispatch(self._pools.agent(other))
            case "give_up":
                self.give_up(pool, f"{pool.fruitless} agents died in a row before running a test")
            case "replace":
                self._run.restarts += 1
                if not self._pools.replace(pool, replaces=record.id) and not pool.agents:
                    self.give_up(pool, "no agent could be started to run it")
            case _:
                assert_never(verdict.then)

    def give_up(self, pool: PoolState, why: str) -> None:
        """No agent is left for this suite: report what remains as failed, never drop it."""
        leftovers = pool.queue.drain() + [index for index, _ in pool.retries]
        pool.retries.clear()
        for index in leftovers:
            if self._ledger.record(index):
                self._replayer.failure(self._items[index], f"not run: {why}", "controller")

    def _degrade(self, pool: PoolState, why: str) -> None:
        """The suite's remaining tests run on one agent, one after another.

        Every crash there still reports (or retries) the test that caused it, so the suite
        ends with every test reported; the restart budget no longer applies to it.
        """
        pool.degraded = True
        self._run.mode = "degraded"
        self._run.degraded[pool.work.name] = why
        if self._events is not None:
            self._events.degraded(pool.work.name, why)
        for agent_id in list(pool.agents):
            self._pools.shut_down(self._pools.agent(agent_id))

    def _crashed_test(
        self,
        pool: PoolState,
        index: int,
        record: AgentRecord,
        died_at: float,
        timeout: str,
        stderr: str = "",
    ) -> bool:
        """Retry, rerun or report the test the agent died in; whether the crash counts
        against the suite (``CrashVerdict``)."""
        traceback = crash_summary(
            self._fleet.read_crash_log(record.id, self._status_dir), stuck=bool(timeout)
        )
        if stderr.strip():
            traceback += f"\n--- the agent's last stderr ---\n{stderr.strip()}"
        if timeout:
            # A timeout is the test's own doing: reported at once, never retried.
            if self._events is not None:
                self._events.timeout(self._items[index].nodeid, agent=record.id, reason=timeout)
            if self._ledger.record(index):
                self._replayer.failure(
                    self._items[index],
                    f"{timeout}; agent {record.id} (pid {record.pid}) was killed\n{traceback}",
                    record.id,
                )
            return True
        detail = f"agent {record.id} (pid {record.pid}) {record.exit_detail}"
        if traceback:
            detail += f"\n{traceback}"
        crashes = self._crashes.setdefault(index, [])
        crashes.append(detail)
        reruns = self._pools.crash_reruns(index)
        verdict = after_crash(
            len(crashes),
            reruns=reruns,
            max_retries=self._max_retries,
            stopping=self._pools.stopping,
        )
        # rerunfailures' attempt index: its summary orders a test's attempts by it.
        rerun = len(crashes) - 1 if reruns else None
        if verdict.action != "fail":
            if verdict.action == "rerun":
                self._replayer.rerun(
                    self._items[index],
                    f"this test killed the agent running it (attempt {len(crashes)}); "
                    f"pytest-rerunfailures runs it again (rerun {len(crashes)} of "
                    f"{reruns}):\n\n{detail}",
                    record.id,
                    rerun=len(crashes) - 1,
                )
            # Run again on an agent started after this death (a fresh one).
            self._run.retries += 1
            self._run.retried.append(self._items[index].nodeid)
            if self._events is not None:
                self._events.retry(self._items[index].nodeid, agent=record.id)
            pool.retries.append((index, died_at))
            return verdict.counts_against_suite
        if self._ledger.record(index):
            attempts = "\n\n".join(f"attempt {n}: {text}" for n, text in enumerate(crashes, 1))
            self._replayer.failure(
                self._items[index],
                f"this test killed the agent running it ({len(crashes)} "
                f"attempt{'s' if len(crashes) > 1 else ''}, never tried again):\n\n{attempts}",
                record.id,
                rerun=rerun,
            )
        return verdict.counts_against_suite

    def rerun_crashes(self, tests: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """(test, crashes so far) of those of ``tests`` that pytest-rerunfailures reruns and
        that killed an agent: a fresh agent tells rerunfailures, which counts those attempts
        against the test's reruns, as after a crashed pytest-xdist worker."""
        if not self._crashes:
            return ()
        wanted = set(tests)
        return tuple(
            (index, len(crashes))
            for index, crashes in self._crashes.items()
            if index in wanted and self._pools.crash_reruns(index)
        )
