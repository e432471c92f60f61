"""Finds agents stuck past a test's time limit or silent too long, and kills them.

A kill here only starts the ordinary crash path: the agent's channel closes, and the
controller's recovery blames the test it was stuck in, requeues the rest and replaces it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
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
class Watchdog:
    """Time limits per test (``--agents-timeout``, markers) and heartbeats per agent."""

    def __init__(
        self,
        fleet: Fleet,
        transport: Transport,
        status_dir: Path,
        *,
        timeout: float | None,
        timeouts: dict[int, float],
        heartbeat: float,
    ) -> None:
        self._fleet = fleet
        self._transport = transport
        self._status_dir = status_dir
        self._timeout = timeout
        self._timeouts = timeouts
        self._heartbeat = heartbeat
        self._last_watch = 0.0

    def check(self, agents: Iterable[AgentState]) -> None:
        """Kill agents stuck past a test's time limit, or that stopped answering."""
        now = time.perf_counter()
        if now - self._last_watch < WATCH_INTERVAL:
            return
        self._last_watch = now
        wall = time.time()
        for agent in list(agents):
            if agent.finished or agent.stuck is not None:
                continue
            if not agent.ready:
                # Agents speak (heartbeats) from the moment their session starts: one silent
                # since its start never received StartSession whole, or hangs before it.
                if now - agent.last_seen > self._heartbeat:
                    self._kill(agent, None, f"no message for {self._heartbeat:g} s")
                continue
            running, since = self._fleet.read_slot(agent.record.id, self._status_dir, fresh=False)
            limit = self._timeouts.get(running, self._timeout) if running is not None else None
            if running is not None and limit and wall - since > limit:
                self._kill(agent, running, f"timeout: still running after {limit:g} s")
            elif running is None and now - agent.last_seen > self._heartbeat:
                # (A running test may hold the GIL in C for long; its time limit governs it.)
                self._kill(agent, None, f"no message for {self._heartbeat:g} s")
            elif (
                running is None
                and (agent.in_flight or agent.shutdown_sent)
                and not agent.awaiting_return
                and wall - max(since, agent.last_dispatch) > self._heartbeat
            ):
                # Between tests with work to do, or told to finish and not finishing.
                self._kill(agent, None, f"idle for {self._heartbeat:g} s with work left")

    def _kill(self, agent: AgentState, index: int | None, why: str) -> None:
        """Have the agent write its stacks (faulthandler on SIGUSR1), then kill it."""
        agent.stuck = (index, why if index is not None else "")
        if index is None:
            agent.record.exit_detail = f"stopped answering: {why}"
        agent_id, pid = agent.record.id, agent.record.pid
        if hasattr(signal, "SIGUSR1") and self._fleet.signal(agent_id, pid, signal.SIGUSR1):
            process = agent.link.process
            await_dump(
                lambda: len(self._fleet.read_crash_log(agent_id, self._status_dir)),
                lambda: process is None or process.poll() is None,
            )
        if not self._fleet.signal(agent_id, pid, signal.SIGKILL):
            # Nothing to signal (a socket gateway): ending the gateway is all there is.
            if agent.link.process is not None:
                agent.link.process.kill()
            self._transport.stop(agent_id)


def await_dump(
    dumped: Callable[[], int],
    alive: Callable[[], bool],
    *,
    grace: float = _DUMP_GRACE,
    poll: float = _DUMP_POLL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until the stack dump stopped growing (True), the agent died, or ``grace`` ran out.

    ``dumped`` is the log's size so far; ``alive`` whether the agent still runs: one that
    died of the signal (no handler armed yet: SIGUSR1's default ends a process) writes none.
    """
    deadline = clock() + grace
    size = -1
    while clock() < deadline:
        sleep(poll)
        now = dumped()
        if now and now == size:
            return True
        if not alive():
            return False
        size = now
    return False
