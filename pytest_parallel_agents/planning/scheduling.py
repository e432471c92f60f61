"""Hand a suite's tests out to its agents: an initial split, then batches and stealing."""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

__all__ = [
    "MAX_WINDOW",
    "MIN_RECLAIM",
    "MIN_WINDOW",
    "SuiteQueue",
    "WorkUnit",
    "hold_limit",
    "longest_first",
    "refill",
    "window_for",
    "withdraw",
]

# Tests an agent should hold before it needs more; refilled at half, so it never waits.
MIN_WINDOW: Final = 2
MAX_WINDOW: Final = 256
# Predicted seconds of work an agent should hold: enough to hide one round trip.
_WINDOW_SECONDS: Final = 0.25
# Fewest tests worth asking an agent to give back. The agents waiting for them hold a test
# they cannot start meanwhile, and the answer comes only after the agent's current test:
# for a test or two that wait costs more than it saves (the sleep suite); a window of a slow
# module met without durations is worth it (benchmarks/bounds.py simulates both).
MIN_RECLAIM: Final = 3


@final
@dataclass(frozen=True)
class WorkUnit:
    """Tests that must run on one agent, in this order (an ordinary test is a unit of one)."""

    tests: tuple[int, ...]
    predicted: float
    # Where its scoped fixtures live (the module): an agent that left a scope should not
    # be sent back into it, or those fixtures are set up again.
    scope: str = ""
    # The class within the module ("" for module-level tests), for class-scoped fixtures.
    subscope: str = ""

    def __post_init__(self) -> None:
        if not self.tests:
            raise ValueError("a work unit needs at least one test")
        if not self.predicted >= 0:  # also rejects NaN
            raise ValueError(f"predicted seconds must be >= 0, got {self.predicted}")


def window_for(done_tests: int, busy_seconds: float) -> int:
    """How many tests an agent should hold, from its pool's mean test time so far."""
    if done_tests < 0 or not busy_seconds >= 0:
        raise ValueError(f"bad arguments: done_tests={done_tests}, busy_seconds={busy_seconds}")
    if not done_tests:
        return 4
    held = _WINDOW_SECONDS * done_tests / busy_seconds if busy_seconds else math.inf
    if held >= MAX_WINDOW:  # also tests too quick to measure (and no ceil of infinity)
        return MAX_WINDOW
    return max(MIN_WINDOW, min(MAX_WINDOW, math.ceil(held) * 2))


def hold_limit(window: int, pending: int, agents: int) -> int:
    """How many dispatched, unfinished tests an agent may hold.

    The window (about a quarter second of tests) while there is plenty left; near the end
    no more than an even share of what is still pending, so that the agents finish
    together rather than one working through a full window while the others are idle
    (guided self-scheduling). Never below two: an agent runs a test only once it knows
    the next one.
    """
    if window < 2 or pending < 0 or agents < 1:
        raise ValueError(f"bad arguments: window={window}, pending={pending}, agents={agents}")
    return max(2, min(window, -(-pending // agents)))


def refill(held: int, limit: int) -> int:
    """How many tests to send an agent that holds ``held``: none while it holds more than
    half its limit (it is not close to waiting), else enough to reach the limit."""
    if held < 0 or limit < 2:
        raise ValueError(f"bad arguments: held={held}, limit={limit}")
    return 0 if held > limit // 2 else limit - held


def withdraw(queue_: deque[int], units: Sequence[tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    """Remove from an agent's ``queue_`` each unit whose tests all wait behind its head;
    return those (what the agent gives back for ``ReturnTests``).

    The head stays: the test that ran last was torn down for it (its ``nextitem``).
    """
    waiting = set(itertools.islice(queue_, 1, None))
    back = tuple(unit for unit in units if unit and waiting.issuperset(unit))
    if back:
        gone = {test for unit in back for test in unit}
        kept = [test for test in queue_ if test not in gone]
        queue_.clear()
        queue_.extend(kept)
    return back


def _first(unit: WorkUnit) -> int:
    return unit.tests[0]


def _fill(batch: list[int], units: MutableSequence[WorkUnit], max_tests: int) -> None:
    """Move whole units from the head of ``units`` into ``batch``; the first always fits."""
    while units and (not batch or len(batch) + len(units[0].tests) <= max_tests):
        batch.extend(units[0].tests)
        del units[0]


def longest_first(units: Sequence[WorkUnit]) -> Callable[[WorkUnit], tuple[Any, ...]]:
    """An order for an agent's share of known durations: its shortest work comes last.

    LPT balances the agents' loads, but the order in which an agent runs its share decides
    the end: run in collection order, an agent can end on a long test that nobody can steal
    any more. So modules go by their longest test, longest first, and inside a module its
    classes the same way, then its tests; a module (and a class) stays in one piece, so its
    scoped fixtures are still set up once per agent. Every agent then ends on short tests,
    which are what a dry agent steals.
    """
    module_top: dict[str, float] = {}
    class_top: dict[tuple[str, str], float] = {}
    for unit in units:
        module_top[unit.scope] = max(module_top.get(unit.scope, 0.0), unit.predicted)
        where = (unit.scope, unit.subscope)
        class_top[where] = max(class_top.get(where, 0.0), unit.predicted)

    def key(unit: WorkUnit) -> tuple[Any, ...]:
        return (
            -module_top.get(unit.scope, unit.predicted),
            unit.scope,
            -class_top.get((unit.scope, unit.subscope), unit.predicted),
            unit.subscope,
            -unit.predicted,
            unit.tests[0],
        )

    return key


def _lpt(units: Sequence[WorkUnit], agents: Sequence[str]) -> dict[str, list[WorkUnit]]:
    """Longest processing time first: each unit to the least loaded agent so far."""
    assigned: dict[str, list[WorkUnit]] = {agent: [] for agent in agents}
    loads = dict.fromkeys(agents, 0.0)
    for unit in sorted(units, key=lambda u: -u.predicted):
        # min() returns the first minimum, so ties go to the earlier agent.
        agent = min(agents, key=loads.__getitem__)
        assigned[agent].append(unit)
        loads[agent] += unit.predicted
    return assigned


def _chunks(units: Sequence[WorkUnit], agents: Sequence[str]) -> dict[str, list[WorkUnit]]:
    """Consecutive runs of units with near-equal test counts, one run per agent.

    Neighbouring tests usually share module and class fixtures, so keeping them
    together saves set-ups when nothing is known about durations.
    """
    assigned: dict[str, list[WorkUnit]] = {agent: [] for agent in agents}
    total = sum(len(unit.tests) for unit in units)
    start = 0
    for unit in units:
        # The chunk holding the unit's midpoint; monotone in start, so chunks stay contiguous.
        size = len(unit.tests)
        chunk = min(len(agents) - 1, (2 * start + size) * len(agents) // (2 * total))
        assigned[agents[chunk]].append(unit)
        start += size
    return assigned


@final
class SuiteQueue:
    """Pending tests of one suite, per agent, plus a shared front queue for retries.

    ``in_order`` (the default of a run): every agent runs its tests as a subsequence of the
    collection order, as in a plain run or under xdist's ``load``, since real suites depend
    on what ran before a test in the same process. The pending units are one list in
    collection order; an agent takes the earliest units that come after the last one it
    took, so agents share the suite as it goes, window by window, and nobody runs anything
    that lies before what it already ran. A unit no running agent may take any more (tests
    of a crashed agent) waits for a fresh agent.

    Otherwise (``--agents-order longest-first``, for suites known to be order-independent)
    each agent keeps its own pending units module by module (contiguous chunks in collection
    order, or with known durations LPT shares run longest first: ``longest_first``), so
    module and class fixtures are set up once per agent; an agent that runs dry steals the
    tail half of the busiest agent's pending units, backwards too.
    """

    def __init__(
        self,
        units: Sequence[WorkUnit],
        agents: Sequence[str],
        *,
        durations_known: bool,
        in_order: bool = True,
    ) -> None:
        if len(set(agents)) != len(agents):
            raise ValueError(f"duplicate agent names in {list(agents)!r}")
        seen: set[int] = set()
        for unit in units:
            if len(set(unit.tests)) != len(unit.tests) or seen.intersection(unit.tests):
                raise ValueError(f"test indices appear twice, in unit {unit.tests!r}")
            seen.update(unit.tests)
        self._durations_known = durations_known
        self._in_order = in_order
        # In order: every pending unit, sorted by its first test, and those first tests.
        self._ordered: list[WorkUnit] = []
        self._firsts: list[int] = []
        self._count = len(seen)  # tests pending anywhere, kept up to date (asked per dispatch)
        self._front: deque[WorkUnit] = deque()
        # Highest test index handed to each agent, to steal forward first; the scopes it
        # has been in, and the one it is in now.
        self._last: dict[str, int] = {}
        self._visited: dict[str, set[str]] = {}
        self._current: dict[str, str] = {}
        # Each test's unit as planned: its scope, its share of the prediction, the group.
        self._unit_of = {test: unit for unit in units for test in unit.tests}
        # Without durations each agent's share runs in collection order; with them, longest
        # first (module by module), so that the agents end on short, stealable tests.
        self._order: Callable[[WorkUnit], Any] = (
            longest_first(units) if durations_known and not in_order else _first
        )
        self._own: dict[str, list[WorkUnit]]
        if in_order and durations_known and agents:
            # Balanced by prediction (LPT), each share then run in collection order.
            self._own = _lpt(units, agents)
        elif in_order:
            self._own = {agent: [] for agent in agents}
            self._ordered = sorted(units, key=_first)
            self._firsts = [_first(unit) for unit in self._ordered]
        elif not agents:
            # Nobody to assign to yet: whoever is added later takes from the front.
            self._own = {}
            self._front.extend(sorted(units, key=self._order))
        elif durations_known:
            self._own = _lpt(units, agents)
        else:
            self._own = _chunks(units, agents)
        for pending in self._own.values():
            pending.sort(key=self._order)

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(self._own)

    def _weight(self, unit: WorkUnit) -> float:
        # Without durations every test counts as one nominal second.
        return unit.predicted if self._durations_known else float(len(unit.tests))

    def _pending_units(self, agent: str) -> list[WorkUnit]:
        try:
            return self._own[agent]
        except KeyError:
            raise KeyError(f"unknown agent {agent!r}") from None

    def top_up(
        self,
        agent: str,
        held: int,
        want: int,
        skip: Callable[[int], bool] = lambda test: False,
    ) -> list[int]:
        """Up to ``want`` more tests for an agent that holds ``held`` (``refill`` says how
        many), and in any case enough that it holds two while tests are pending anywhere:
        an agent runs a test only once it knows the next one. It steals only then, when it
        runs dry; stealing to fill a window would take work from agents about to start and
        scatter this one over the collection. Tests for which ``skip`` is true (already
        reported) are dropped from the batch and not counted as held.
        """
        batch: list[int] = []
        while want > 0 or held + len(batch) < 2:
            holding = held + len(batch)
            taken = self.take(agent, max(1, want), steal=holding < 2, follower=holding == 1)
            if not taken:
                break
            want -= len(taken)
            batch.extend(test for test in taken if not skip(test))
        return batch

    def take(
        self, agent: str, max_tests: int, *, steal: bool = True, follower: bool = False
    ) -> list[int]:
        """The next tests for ``agent``: whole units, at least one if any is pending anywhere.

        Units come from the front queue, then the agent's own pending units, then (only
        when ``steal`` and the agent has nothing of its own) stolen ones; more units are
        added while the batch stays within ``max_tests``. ``follower``: the agent holds one
        test and steals only the one to run after it (see ``_steal``).
        """
        if max_tests < 1:
            raise ValueError(f"max_tests must be >= 1, got {max_tests}")
        own = self._pending_units(agent)
        if self._in_order:
            return self._take_in_order(agent, max_tests, steal=steal)
        batch: list[int] = []
        _fill(batch, self._front, max_tests)
        if self._front:
            # The next retried unit does not fit; own units must not overtake it.
            self._count -= len(batch)
            return batch
        _fill(batch, own, max_tests)
        if not batch and steal and self._steal(agent, follower=follower):
            _fill(batch, own, max_tests)
        self._count -= len(batch)
        if batch:
            self._last[agent] = max(self._last.get(agent, -1), max(batch))
            scopes = self._visited.setdefault(agent, set())
            for test in batch:
                planned = self._unit_of.get(test)
                scope = planned.scope if planned is not None else ""
                scopes.add(scope)
                self._current[agent] = scope
        return batch

    def _take_in_order(self, agent: str, max_tests: int, *, steal: bool) -> list[int]:
        """The earliest units after the last one ``agent`` took, within ``max_tests``: from
        its own share (known durations) and the shared list, whichever comes first; when
        it has none and ``steal``, the later half of what the busiest agent has after it.

        Taking the earliest candidate keeps every unit of its own share after its last.
        """
        if not self._own[agent] and steal and self._next_shared(agent) is None:
            self._steal_forward(agent)
        own = self._own[agent]
        batch: list[int] = []
        while True:
            at = self._next_shared(agent)
            shared = self._ordered[at] if at is not None else None
            if own and (shared is None or _first(own[0]) < _first(shared)):
                unit = own[0]
            elif shared is not None:
                unit = shared
            else:
                break
            if batch and len(batch) + len(unit.tests) > max_tests:
                break
            if unit is shared and at is not None:
                del self._ordered[at]
                del self._firsts[at]
            else:
                del own[0]
            batch.extend(unit.tests)
            # A group's position is its first test: the agent goes on after it.
            self._last[agent] = _first(unit)
        self._count -= len(batch)
        return batch

    def _next_shared(self, agent: str) -> int | None:
        """Where the first shared unit after ``agent``'s last is, if there is one."""
        at = bisect.bisect_right(self._firsts, self._last.get(agent, -1))
        return at if at < len(self._ordered) else None

    def _steal_forward(self, thief: str) -> None:
        """The later half of the busiest agent's units that lie after the thief's last."""
        last = self._last.get(thief, -1)
        best: tuple[float, str, int] | None = None
        for victim, units in self._own.items():
            if victim == thief or not units:
                continue
            # Its share is in collection order: those after ``last`` are a suffix.
            start = bisect.bisect_right(units, last, key=_first)
            weight = sum(self._weight(u) for u in units[start:])
            if start < len(units) and (best is None or weight > best[0]):
                best = (weight, victim, start)
        if best is None:
            return
        _, victim, start = best
        units = self._own[victim]
        cut = len(units) - (len(units) - start + 1) // 2
        self._own[thief] = units[cut:]
        del units[cut:]

    def _insert_in_order(self, unit: WorkUnit) -> None:
        at = bisect.bisect_right(self._firsts, _first(unit))
        self._ordered.insert(at, unit)
        self._firsts.insert(at, _first(unit))

    def exhausted_for(self, agent: str) -> bool:
        """Whether nothing pending could ever be given to ``agent`` (in order: nothing after
        the last unit it took; otherwise nothing at all, since it may steal anything)."""
        if not self._in_order:
            return self.empty
        last = self._last.get(agent, -1)
        if self._ordered and self._firsts[-1] > last:
            return False
        return not any(units and _first(units[-1]) > last for units in self._own.values())

    def _steal(self, thief: str, *, follower: bool = False) -> bool:
        """Move the tail half of the busiest agent's pending units to ``thief``.

        Forward steals come first: units after everything the thief has had, so it keeps
        moving through the collection in order and does not re-enter a module it left
        (whose fixtures would be set up again). Only when no agent has such units does the
        thief go back, since an idle agent beside pending work is worse.

        A ``follower`` runs after the one test the thief holds, which it cannot start
        before it knows its next. With durations known it is the one shortest unit among
        those tails, not a half: LPT gives a long test an agent of its own, and that agent,
        stealing half of the busiest share to know its next test, took the other long test
        and ran both in a row.
        """
        last = self._last.get(thief, -1)
        left = self._visited.get(thief, set()) - {self._current.get(thief, "")}
        others = {a: u for a, u in self._own.items() if a != thief and u}
        candidates: dict[str, list[WorkUnit]] = {}
        shortest = follower and self._durations_known
        filters: list[Callable[[WorkUnit], bool]] = [
            lambda u: _first(u) > last and u.scope not in left,  # onwards, into new scopes
            lambda u: u.scope not in left,  # backwards, still never into a scope it left
            lambda u: True,  # anything: an idle agent beside pending work is worse
        ]
        # Onwards matters less than what the follower costs: it waits behind a running test.
        for keep in filters[1:] if shortest else filters:
            candidates = {
                a: kept for a, units in others.items() if (kept := list(filter(keep, units)))
            }
            if candidates:
                break
        if not candidates:
            return False
        # max() returns the first maximum, so ties go to the earlier agent.
        victim = max(candidates, key=lambda a: sum(self._weight(u) for u in candidates[a]))
        pool = candidates[victim]
        # The tail: the victim is about to run its head, with its fixtures warm.
        stolen = pool[-((len(pool) + 1) // 2) :]
        if shortest:
            tails = [(a, units[-((len(units) + 1) // 2) :]) for a, units in candidates.items()]
            # The shortest; among equals the busiest victim's, and the last in its order.
            victim, unit = min(
                ((a, u) for a, tail in tails for u in reversed(tail)),
                key=lambda pair: (pair[1].predicted, pair[0] != victim),
            )
            stolen = [unit]
        taken = set(map(id, stolen))
        self._own[victim] = [u for u in self._own[victim] if id(u) not in taken]
        own = self._own[thief]
        for unit in stolen:
            bisect.insort(own, unit, key=self._order)
        return True

    def requeue(self, tests: Sequence[int]) -> None:
        """Put ``tests`` at the front: the next take() by any agent returns them first."""
        for test in tests:
            # Alone now, with its share of its unit's prediction.
            unit = self._unit_of.get(test)
            seconds = unit.predicted / len(unit.tests) if unit is not None else 0.0
            alone = WorkUnit(
                (test,),
                seconds,
                unit.scope if unit is not None else "",
                unit.subscope if unit is not None else "",
            )
            if self._in_order:
                self._insert_in_order(alone)
            else:
                self._front.append(alone)
        self._count += len(tests)

    def whole_units(self, tests: Sequence[int]) -> list[tuple[int, ...]]:
        """The units all of whose tests are among ``tests``, in the order they appear there.

        A unit is a group that must run on one agent: only whole ones may move.
        """
        present = set(tests)
        units: list[tuple[int, ...]] = []
        seen: set[int] = set()
        for test in tests:
            unit = self._unit_of.get(test)
            if unit is None or unit.tests[0] in seen:
                continue
            seen.add(unit.tests[0])
            if present.issuperset(unit.tests):
                units.append(unit.tests)
        return units

    def reclaim_offer(
        self, holdings: Mapping[str, Sequence[int]], asking: str | None = None
    ) -> tuple[str, list[tuple[int, ...]]] | None:
        """Whom to ask for tests back, and which: of the agents holding ``holdings`` (the
        tests sent to each and not reported, in order), the one with the most tests in whole
        units behind its first two (one may be running, the next is its ``nextitem``), if
        that is at least ``MIN_RECLAIM``. In order, only units ``asking`` may still take."""
        after = self._last.get(asking, -1) if self._in_order and asking is not None else -1
        best: tuple[int, str, list[tuple[int, ...]]] | None = None
        for agent, held in holdings.items():
            if len(held) < 2 + MIN_RECLAIM:
                continue
            units = [u for u in self.whole_units(list(held)[2:]) if u[0] > after]
            size = sum(map(len, units))
            if size >= MIN_RECLAIM and (best is None or size > best[0]):
                best = (size, agent, units)
        return None if best is None else (best[1], best[2])

    def give_back(self, units: Sequence[tuple[int, ...]]) -> None:
        """Put whole units an agent returned unrun at the front, as the units they were."""
        for tests in units:
            unit = self._unit_of.get(tests[0]) if tests else None
            if unit is None or unit.tests != tests:
                raise ValueError(f"{tests!r} is not a unit of this suite")
            if self._in_order:
                self._insert_in_order(unit)
            else:
                self._front.append(unit)
            self._count += len(tests)

    def add_agent(self, agent: str) -> None:
        """Register a new agent with nothing pending; it starts by taking or stealing."""
        if agent in self._own:
            raise ValueError(f"agent {agent!r} is already registered")
        self._own[agent] = []

    def remove_agent(self, agent: str) -> list[int]:
        """Forget ``agent``; its pending units move to the front queue (in order: the shared
        list), still whole."""
        units = self._pending_units(agent)
        del self._own[agent]
        if self._in_order:
            for unit in units:
                self._insert_in_order(unit)
        else:
            self._front.extend(units)
        return [test for unit in units for test in unit.tests]

    def drain(self) -> list[int]:
        """Remove and return every pending test (front queue first), e.g. when no agent is left."""
        units = list(self._front) + self._ordered
        self._front.clear()
        self._ordered, self._firsts = [], []
        for pending in self._own.values():
            units.extend(pending)
            pending.clear()
        self._count = 0
        return [test for unit in units for test in unit.tests]

    def pending(self, agent: str) -> int:
        """Tests assigned to ``agent`` and not yet taken (the front queue is not counted)."""
        return sum(len(unit.tests) for unit in self._pending_units(agent))

    def pending_seconds(self, agent: str) -> float:
        """Predicted seconds pending for ``agent``; one per test when durations are unknown."""
        return sum(self._weight(unit) for unit in self._pending_units(agent))

    @property
    def empty(self) -> bool:
        return not self._front and not self._ordered and not any(self._own.values())

    @property
    def pending_units(self) -> int:
        """Units not taken yet, anywhere: how many agents could still be given work."""
        return len(self._front) + len(self._ordered) + sum(map(len, self._own.values()))

    @property
    def total_pending(self) -> int:
        """Tests not taken yet, anywhere (front queue included); constant time."""
        return self._count
