"""Finds agents stuck past a test's time limit or silent too long, and kills them.

A kill here only starts the ordinary crash path: the agent's channel closes, and the
controller's recovery blames the test it was stuck in, requeues the rest and replaces it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from pytest_parallel_agents.controller.fleet import Fleet
from pytest_parallel_agents.controller.pools import AgentState
from pytest_parallel_agents.transport.gateways import Transport

# How often the watchdog looks at running agents (timeouts, heartbeats).
WATCH_INTERVAL: Final = 0.1
# How long a stuck agent gets to write its stacks before it is killed: the dump is complete
# once the log stopped growing for one poll; a loaded machine may take a while to start it.
_DUMP_GRACE: Final = 3.0
_DUMP_POLL: Final = 0.05


@final
@dataclass
class _Dumping:
    """A stuck agent told to write its stacks: killed once the dump is complete."""

    agent: AgentState
    deadline: float
    next_poll: float
    size: int = -1


def dump_finished(size: int | None, before: int, *, alive: bool) -> bool:
    """Whether to stop waiting for a stack dump of ``size`` bytes so far (None: not known
    yet), ``before`` at the last poll: it stopped growing, or the agent died of the signal
    (no handler armed yet: SIGUSR1's default ends a process) and writes none."""
    return (bool(size) and size == before) or not alive


@final
class Watchdog:
    """Time limits per test (``--agents-timeout``, markers) and heartbeats per agent.

    It never waits: ``check`` looks, signals and returns. A stuck agent is sent SIGUSR1
    (faulthandler dumps its stacks) and killed on a later check, once the dump stopped
    growing or ``_DUMP_GRACE`` ran out; a remote agent's slot and log come from reads the
    fleet runs off the loop.
    """

    def __init__(
        self,
        fleet: Fleet,
        transport: Transport,
        status_dir: Path,
        *,
        timeout: float | None,
        timeouts: dict[int, float],
        heartbeat: float,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        running: Callable[[AgentState, int, float], None] | None = None,
    ) -> None:
        # Told of each test seen running: (agent, test, since, wall clock), for the events.
        self._running = running
        self._fleet = fleet
        self._transport = transport
        self._status_dir = status_dir
        self._timeout = timeout
        self._timeouts = timeouts
        self._heartbeat = heartbeat
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_watch = -WATCH_INTERVAL
        self._dumping: list[_Dumping] = []

    @property
    def dumping(self) -> bool:
        """Whether a stuck agent is still writing its stacks (to be killed after)."""
        return bool(self._dumping)

    def check(self, agents: Iterable[AgentState]) -> None:
        """Kill agents stuck past a test's time limit, or that stopped answering."""
        now = self._clock()
        if self._dumping:
            self._advance_dumps(now)
        if now - self._last_watch < WATCH_INTERVAL:
            return
        self._last_watch = now
        wall = self._wall_clock()
        for agent in list(agents):
            if agent.finished or agent.stuck is not None:
                continue
            if not agent.ready:
                # Agents speak (heartbeats) from the moment their session starts: one silent
                # since its start never received StartSession whole, or hangs before it.
                if now - agent.last_seen > self._heartbeat:
                    self._kill(agent, None, f"no message for {self._heartbeat:g} s", now)
                continue
            slot = self._fleet.watched_slot(agent.record.id, self._status_dir)
            running, since = slot if slot is not None else (None, wall)
            if running is not None and self._running is not None:
                self._running(agent, running, since)
            limit = self._timeouts.get(running, self._timeout) if running is not None else None
            if running is not None and limit and wall - since > limit:
                self._kill(agent, running, f"timeout: still running after {limit:g} s", now)
            elif running is None and now - agent.last_seen > self._heartbeat:
                # (A running test may hold the GIL in C for long; its time limit governs it.)
                self._kill(agent, None, f"no message for {self._heartbeat:g} s", now)
            elif (
                slot is not None
                and running is None
                and (agent.in_flight or agent.shutdown_sent)
                and not agent.awaiting_return
                and wall - max(since, agent.last_dispatch) > self._heartbeat
            ):
                # Between tests with work to do, or told to finish and not finishing.
                self._kill(agent, None, f"idle for {self._heartbeat:g} s with work left", now)

    def _kill(self, agent: AgentState, index: int | None, why: str, now: float) -> None:
        """Have the agent write its stacks (faulthandler on SIGUSR1); it is killed once the
        dump is complete (``_advance_dumps``), or at once where it cannot be signalled."""
        agent.stuck = (index, why if index is not None else "")
        if index is None:
            agent.record.exit_detail = f"stopped answering: {why}"
        if hasattr(signal, "SIGUSR1") and self._fleet.signal(
            agent.record.id, agent.record.pid, signal.SIGUSR1
        ):
            self._dumping.append(_Dumping(agent, now + _DUMP_GRACE, now + _DUMP_POLL))
        else:
            self._end(agent)

    def _advance_dumps(self, now: float) -> None:
        waiting = []
        for dump in self._dumping:
            agent = dump.agent
            if agent.finished:
                continue  # it ended of itself meanwhile: the crash path has it
            if now < dump.next_poll:
                waiting.append(dump)
                continue
            dump.next_poll = now + _DUMP_POLL
            size = self._fleet.crash_log_size(agent.record.id, self._status_dir)
            process = agent.link.process
            alive = process is None or process.poll() is None
            if now >= dump.deadline or dump_finished(size, dump.size, alive=alive):
                self._end(agent)
            else:
                dump.size = size if size is not None else dump.size
                waiting.append(dump)
        self._dumping = waiting

    def _end(self, agent: AgentState) -> None:
        agent_id, pid = agent.record.id, agent.record.pid
        if not self._fleet.signal(agent_id, pid, signal.SIGKILL):
            # Nothing to signal (a socket gateway): ending the gateway is all there is.
            if agent.link.process is not None:
                agent.link.process.kill()
            self._transport.stop(agent_id)
