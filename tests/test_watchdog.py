"""How long the watchdog waits for a stuck agent's stack dump before it kills the agent."""

from __future__ import annotations

from collections.abc import Callable

from pytest_parallel_agents.controller.watchdog import await_dump


class _Clock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _wait(sizes: list[int], alive: Callable[[], bool] = lambda: True) -> tuple[bool, float]:
    clock = _Clock()
    polls = iter(sizes)
    last = [0]

    def dumped() -> int:
        last[0] = next(polls, last[0])
        return last[0]

    done = await_dump(dumped, alive, grace=3.0, poll=0.05, clock=clock, sleep=clock.sleep)
    return done, clock.now


def test_waits_until_the_dump_stops_growing() -> None:
    done, waited = _wait([0, 0, 120, 480, 900, 900])
    assert done and abs(waited - 0.30) < 1e-9  # six polls: the size held once


def test_gives_up_when_nothing_is_written_within_the_grace() -> None:
    done, waited = _wait([])
    assert not done and 3.0 <= waited < 3.1


def test_stops_waiting_once_the_agent_died_of_the_signal() -> None:
    # No handler armed yet: SIGUSR1 ended the agent, and no dump will come.
    done, waited = _wait([], alive=lambda: False)
    assert not done and waited < 0.1
