"""The watchdog's decisions on a fake clock: it never waits, and kills a stuck agent only
once its stack dump is complete (or the grace ran out)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from pytest_parallel_agents.controller.pools import AgentState
from pytest_parallel_agents.controller.runstate import AgentRecord
from pytest_parallel_agents.controller.watchdog import Watchdog, dump_finished
from pytest_parallel_agents.transport.gateways import AgentLink

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Process:
    def __init__(self) -> None:
        self.alive = True

    def poll(self) -> int | None:
        return None if self.alive else -9

    def kill(self) -> None:
        self.alive = False


class Fleet:
    """What the watchdog asks of the fleet; nothing here blocks, as in the real one."""

    def __init__(self) -> None:
        self.slots: dict[str, tuple[int | None, float] | None] = {}
        self.log_sizes: list[int | None] = []
        self.signals: list[tuple[str, int]] = []
        self.can_signal = True

    def watched_slot(self, agent_id: str, status_dir: Path) -> tuple[int | None, float] | None:
        return self.slots.get(agent_id, (None, 0.0))

    def crash_log_size(self, agent_id: str, status_dir: Path) -> int | None:
        return self.log_sizes.pop(0) if len(self.log_sizes) > 1 else self.log_sizes[0]

    def signal(self, agent_id: str, pid: int | None, signum: int) -> bool:
        self.signals.append((agent_id, signum))
        return self.can_signal


class Transport:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop(self, agent_id: str) -> None:
        self.stopped.append(agent_id)


def _setup(
    *, timeout: float = 5.0
) -> tuple[Watchdog, Fleet, Transport, Clock, Clock, AgentState, Process]:
    clock, wall = Clock(), Clock()
    fleet, transport = Fleet(), Transport()
    process = Process()
    link = AgentLink("unit-0", None, None, "localhost", 0.0, process)  # type: ignore[arg-type]
    agent = AgentState(AgentRecord("unit-0", "unit", "localhost", 0.0, pid=4242), link, "unit")
    agent.ready = True
    agent.last_seen = clock.now
    dog = Watchdog(
        fleet,  # type: ignore[arg-type]
        transport,  # type: ignore[arg-type]
        Path("/nonexistent"),
        timeout=timeout,
        timeouts={},
        heartbeat=30.0,
        clock=clock,
        wall_clock=wall,
    )
    return dog, fleet, transport, clock, wall, agent, process


def _advance(dog: Watchdog, clocks: tuple[Clock, Clock], agent: AgentState, seconds: float) -> None:
    for clock in clocks:
        clock.now += seconds
    dog.check([agent])


def test_a_stuck_agent_is_killed_once_its_dump_stops_growing() -> None:
    dog, fleet, _transport, clock, wall, agent, _process = _setup()
    fleet.slots["unit-0"] = (7, wall.now)  # test 7 started now
    fleet.log_sizes = [0, 0, 120, 480, 900, 900]
    _advance(dog, (clock, wall), agent, 5.5)
    assert agent.stuck == (7, "timeout: still running after 5 s")
    assert fleet.signals == [("unit-0", signal.SIGUSR1)]
    assert dog.dumping  # check() returned at once: nothing waited for the dump
    polls = 0
    while dog.dumping:
        _advance(dog, (clock, wall), agent, 0.05)
        polls += 1
    # Six polls: the size held once (900, 900); then the kill.
    assert polls == 6
    assert fleet.signals[-1] == ("unit-0", signal.SIGKILL)


def test_without_a_dump_the_kill_comes_when_the_grace_ran_out() -> None:
    dog, fleet, _transport, clock, wall, agent, _process = _setup()
    fleet.slots["unit-0"] = (3, wall.now)
    fleet.log_sizes = [0]
    _advance(dog, (clock, wall), agent, 6.0)
    waited = 0.0
    while dog.dumping:
        _advance(dog, (clock, wall), agent, 0.1)
        waited += 0.1
    assert 2.95 <= waited <= 3.15
    assert [s for _, s in fleet.signals] == [signal.SIGUSR1, signal.SIGKILL]


def test_an_agent_the_signal_ended_is_not_waited_for() -> None:
    # No handler armed yet: SIGUSR1 ended the agent, and no dump will come.
    dog, fleet, _transport, clock, wall, agent, process = _setup()
    fleet.slots["unit-0"] = (3, wall.now)
    fleet.log_sizes = [0]
    _advance(dog, (clock, wall), agent, 6.0)
    process.alive = False
    _advance(dog, (clock, wall), agent, 0.05)
    assert not dog.dumping


def test_an_agent_that_ended_while_dumping_is_left_to_the_crash_path() -> None:
    dog, fleet, _transport, clock, wall, agent, _process = _setup()
    fleet.slots["unit-0"] = (3, wall.now)
    fleet.log_sizes = [0, 50, 100]
    _advance(dog, (clock, wall), agent, 6.0)
    agent.finished = True
    _advance(dog, (clock, wall), agent, 0.05)
    assert not dog.dumping
    assert [s for _, s in fleet.signals] == [signal.SIGUSR1]


def test_an_agent_that_cannot_be_signalled_has_its_gateway_ended() -> None:
    dog, fleet, transport, clock, wall, agent, process = _setup()
    fleet.slots["unit-0"] = (3, wall.now)
    fleet.can_signal = False  # a socket gateway
    _advance(dog, (clock, wall), agent, 6.0)
    assert not dog.dumping
    assert transport.stopped == ["unit-0"] and not process.alive


def test_a_remote_slot_not_read_yet_kills_nothing() -> None:
    # The first read over a host's gateway is under way (None): neither a timeout nor
    # "idle with work left" may be decided from nothing.
    dog, fleet, _transport, clock, wall, agent, _process = _setup(timeout=1.0)
    fleet.slots["unit-0"] = None
    agent.in_flight.extend([1, 2])
    _advance(dog, (clock, wall), agent, 20.0)
    assert agent.stuck is None and not fleet.signals
    # Silence past the heartbeat still counts: that needs no slot.
    _advance(dog, (clock, wall), agent, 20.0)
    assert agent.stuck is not None and "no message for 30 s" in agent.record.exit_detail


@pytest.mark.parametrize(
    ("size", "before", "alive", "finished"),
    [
        (None, -1, True, False),
        (0, 0, True, False),
        (120, -1, True, False),
        (480, 120, True, False),
        (900, 900, True, True),
        (0, -1, False, True),
    ],
)
def test_dump_finished(size: int | None, before: int, alive: bool, finished: bool) -> None:
    assert dump_finished(size, before, alive=alive) is finished


def test_check_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(*_: Any) -> None:
        raise AssertionError("the watchdog slept on the loop")

    monkeypatch.setattr("time.sleep", no_sleep)
    test_a_stuck_agent_is_killed_once_its_dump_stops_growing()
