"""Hand a suite's tests out to its agents: an initial split, then batches and stealing."""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from pytest_parallel_agents.planning.lpt import lpt

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
# In collection order with known durations, a unit predicted at least this share of an
# agent's even share of the suite is planned (LPT); quicker ones go as the agents go. The
# sleep suite then simulates at 1.03x its lower bound on 2, 4 and 8 agents (everything
# planned: 1.00, 1.05, 1.03x; ``benchmarks/bounds.py``), and a suite of many quick tests is
# all shared out (``benchmarks/tail.py``).
_PLANNED_SHARE: Final = 0.01
# A follower behind a test predicted this long is one short unit, not a half (``_steal``):
# behind a quicker test the units stolen wait no longer than a window would.
_LONG_HELD: Final = _WINDOW_SECONDS


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


def _after(unit: WorkUnit) -> int:
    # The key of a stack in collection order (the latest unit first): ascending, for bisect.
    return -unit.tests[0]


def _predicted(unit: WorkUnit) -> float:
    return unit.predicted


def _fill_front(batch: list[int], front: deque[WorkUnit], max_tests: int) -> None:
    """Move whole units from the head of ``front`` into ``batch``; the first always fits."""
    while front and (not batch or len(batch) + len(front[0].tests) <= max_tests):
        batch.extend(front.popleft().tests)


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


def _plan_in_order(
    units: Sequence[WorkUnit], agents: Sequence[str]
) -> tuple[dict[str, list[WorkUnit]], list[WorkUnit]]:
    """With known durations in collection order: the units to plan, by LPT, and the rest.

    Only a unit long against an even share (``_PLANNED_SHARE`` of it) is planned; the rest
    is shared out as the agents go, window by window. Planned shares of many quick tests
    would spread each agent over the whole collection, so an agent faster than predicted
    (agents share cores, and the figures of trivial tests are noise) would finish its share
    with the others' units still pending behind it, where it may not go; what is shared as
    the agents go cannot be unbalanced by a wrong prediction. A long unit is what sharing
    cannot balance (the agent that meets it late ends late): LPT spreads those over the
    agents, and an agent with its even share of work ahead in them goes straight on to them
    (``SuiteQueue._may_pass``). There are at most ``len(agents) / _PLANNED_SHARE`` of them,
    whatever the size of the suite.
    """
    total = sum(unit.predicted for unit in units)
    least = _PLANNED_SHARE * total / len(agents)
    planned = [unit for unit in units if unit.predicted > 0 and unit.predicted >= least]
    chosen = set(map(id, planned))
    shares = lpt(planned, _predicted, len(agents))
    return dict(zip(agents, shares, strict=True)), [u for u in units if id(u) not in chosen]


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
class _Tally:
    """What an agent's own pending units come to, in all and per scope: what a thief that
    must not re-enter some scopes could take from it is known without reading the units."""

    __slots__ = ("count", "scopes", "weight")

    def __init__(self) -> None:
        self.count = 0
        self.weight = 0.0
        self.scopes: dict[str, tuple[int, float]] = {}

    def add(self, unit: WorkUnit, weight: float, sign: int) -> None:
        count, seconds = self.scopes.get(unit.scope, (0, 0.0))
        count += sign
        if count:
            self.scopes[unit.scope] = (count, seconds + sign * weight)
        else:
            self.scopes.pop(unit.scope, None)  # and with it any rounding left over
        self.count += sign
        self.weight = self.weight + sign * weight if self.count else 0.0

    def avoiding(self, scopes: set[str]) -> tuple[int, float]:
        """Units and weight outside ``scopes``; costs the smaller of the two sets of scopes."""
        count, weight = self.count, self.weight
        for scope in scopes if len(scopes) < len(self.scopes) else self.scopes:
            if scope in scopes and (entry := self.scopes.get(scope)) is not None:
                count -= entry[0]
                weight -= entry[1]
        return count, weight


@final
class SuiteQueue:
    """Pending tests of one suite, per agent, plus a shared front queue for retries.

    ``in_order`` (the default of a run): every agent runs its tests as a subsequence of the
    collection order, as in a plain run or under xdist's ``load``, since real suites depend
    on what ran before a test in the same process. The pending units are one list in
    collection order; an agent takes the earliest units that come after the last one it
    took, so agents share the suite as it goes, window by window, and nobody runs anything
    that lies before what it already ran. With known durations the units long against an
    agent's even share are planned (LPT: ``_plan_in_order``), each agent taking its own as it
    comes to them. A unit no running agent may take any more (tests of a crashed agent)
    waits for a fresh agent.

    Otherwise (``--agents-order longest-first``, for suites known to be order-independent)
    each agent keeps its own pending units module by module (contiguous chunks in collection
    order, or with known durations LPT shares run longest first: ``longest_first``), so
    module and class fixtures are set up once per agent; an agent that runs dry steals the
    tail half of the busiest agent's pending units, backwards too.

    Every pending list is a stack, its next unit last: what an agent takes comes off the
    end, so a dispatch costs what it hands out, not what is pending. (In collection order
    the agents work at the same place, near the end of the shared stack.)
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
        # In order: every shared pending unit, the latest first test first, and the negated
        # first tests (ascending, for bisect).
        self._ordered: list[WorkUnit] = []
        self._keys: list[int] = []
        self._count = len(seen)  # tests pending anywhere, kept up to date (asked per dispatch)
        self._front: deque[WorkUnit] = deque()
        # Highest test index handed to each agent, to steal forward first; the scopes it
        # has been in, and the one it is in now.
        self._last: dict[str, int] = {}
        self._visited: dict[str, set[str]] = {}
        self._current: dict[str, str] = {}
        # Predicted seconds of the test each agent got last: the one it holds when it holds one.
        self._held: dict[str, float] = {}
        # Each test's unit as planned: its scope, its share of the prediction, the group.
        self._unit_of = {test: unit for unit in units for test in unit.tests}
        # Without durations each agent's share runs in collection order; with them, longest
        # first (module by module), so that the agents end on short, stealable tests.
        self._order: Callable[[WorkUnit], Any] = (
            longest_first(units) if durations_known and not in_order else _first
        )
        self._own: dict[str, list[WorkUnit]]
        shared: Sequence[WorkUnit] = ()
        if in_order and durations_known and agents:
            self._own, shared = _plan_in_order(units, agents)
        elif in_order:
            self._own = {agent: [] for agent in agents}
            shared = units
        elif not agents:
            # Nobody to assign to yet: whoever is added later takes from the front.
            self._own = {}
            self._front.extend(sorted(units, key=self._order))
        elif durations_known:
            self._own = dict(zip(agents, lpt(units, _predicted, len(agents)), strict=True))
        else:
            self._own = _chunks(units, agents)
        self._ordered = sorted(shared, key=_after)
        self._keys = [_after(unit) for unit in self._ordered]
        for pending in self._own.values():
            pending.sort(key=self._order, reverse=True)
        # In order, predicted seconds pending anywhere and in each agent's own units.
        self._seconds = sum(unit.predicted for unit in units)
        self._own_seconds = {
            agent: sum(unit.predicted for unit in pending) for agent, pending in self._own.items()
        }
        # Longest-first's thieves choose by these (in order, own units are few: none needed).
        self._tallies: dict[str, _Tally] = {}
        # (thief, victim, tests) of each steal since the caller last took them (take_steals).
        self._steals: list[tuple[str, str, int]] = []
        if not in_order:
            for agent, pending in self._own.items():
                self._tallies[agent] = tally = _Tally()
                for unit in pending:
                    tally.add(unit, self._weight(unit), 1)

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
        test and steals to know the one to run after it (see ``_steal``).
        """
        if max_tests < 1:
            raise ValueError(f"max_tests must be >= 1, got {max_tests}")
        self._pending_units(agent)  # an unknown agent is a KeyError
        if self._in_order:
            batch = self._take_in_order(agent, max_tests, steal=steal)
        else:
            batch = []
            _fill_front(batch, self._front, max_tests)
            if self._front:
                # The next retried unit does not fit; own units must not overtake it.
                self._count -= len(batch)
                self._note_held(agent, batch)
                return batch
            self._fill_own(agent, batch, max_tests)
            if not batch and steal and self._steal(agent, max_tests, follower=follower):
                self._fill_own(agent, batch, max_tests)
            self._count -= len(batch)
            if batch:
                self._last[agent] = max(self._last.get(agent, -1), max(batch))
                scopes = self._visited.setdefault(agent, set())
                for test in batch:
                    planned = self._unit_of.get(test)
                    scope = planned.scope if planned is not None else ""
                    scopes.add(scope)
                    self._current[agent] = scope
        self._note_held(agent, batch)
        return batch

    def _fill_own(self, agent: str, batch: list[int], max_tests: int) -> None:
        """Move whole units off the top (the end) of the agent's own stack into ``batch``;
        the first always fits. Taking from the end costs the same however much is pending."""
        own, tally = self._own[agent], self._tallies[agent]
        while own and (not batch or len(batch) + len(own[-1].tests) <= max_tests):
            unit = own.pop()
            tally.add(unit, self._weight(unit), -1)
            batch.extend(unit.tests)

    def _note_held(self, agent: str, batch: Sequence[int]) -> None:
        if batch:
            unit = self._unit_of.get(batch[-1])
            self._held[agent] = unit.predicted / len(unit.tests) if unit is not None else 0.0

    def _take_in_order(self, agent: str, max_tests: int, *, steal: bool) -> list[int]:
        """The earliest units after the last one ``agent`` took, within ``max_tests``: from
        its own share (planned or stolen) and the shared list, whichever comes first; when
        it has none and ``steal``, the later half of what the busiest agent has after it.

        An agent whose own pending work is an even share of all that is pending or more
        goes on to its own next unit, past shared ones that another agent behind them will
        take (``_may_pass``): it has enough to do, and an agent that meets its long test
        late ends late.
        Taking the earliest candidate keeps every unit of its own share after its last.
        """
        # The shared units after the agent's last are those below ``end``; the earliest of
        # them is at ``end - 1``, and the ones taken are ``self._ordered[at:end]``.
        ordered, keys = self._ordered, self._keys
        end = bisect.bisect_left(keys, -self._last.get(agent, -1))
        own = self._own[agent]
        if not own and steal and not end:
            self._steal_forward(agent)
            own = self._own[agent]
        batch: list[int] = []
        at = end
        while True:
            shared = ordered[at - 1] if at else None
            mine = bool(own) and (
                shared is None
                or _first(own[-1]) < _first(shared)
                or self._may_pass(agent, _first(shared))
            )
            unit = own[-1] if mine else shared
            if unit is None or (batch and len(batch) + len(unit.tests) > max_tests):
                break
            if not mine:
                at -= 1
            else:
                own.pop()
                self._own_seconds[agent] -= unit.predicted
                if shared is not None and _first(shared) < _first(unit):
                    # Past shared units: those now lie behind it, for the others.
                    del ordered[at:end], keys[at:end]
                    at = end = bisect.bisect_left(keys, _after(unit))
            self._seconds -= unit.predicted
            batch.extend(unit.tests)
            # A group's position is its first test: the agent goes on after it.
            self._last[agent] = _first(unit)
        # Only what lies behind the taken units moves: those behind every agent's last.
        del ordered[at:end], keys[at:end]
        self._count -= len(batch)
        return batch

    def _may_pass(self, agent: str, first: int) -> bool:
        """Whether ``agent`` may go past the shared unit at ``first`` to its own next one:
        its own pending work is an even share of all pending or more, and another agent is
        still behind that unit, so it is left to someone."""
        return self._own_seconds[agent] * len(self._own) >= self._seconds and any(
            self._last.get(other, -1) < first for other in self._own if other != agent
        )

    def _steal_forward(self, thief: str) -> None:
        """The later half of the busiest agent's units that lie after the thief's last."""
        key = -self._last.get(thief, -1)
        best: tuple[float, str, int] | None = None
        for victim, units in self._own.items():
            if victim == thief or not units:
                continue
            # Its share is a stack in collection order: those after the last are a prefix.
            after = bisect.bisect_left(units, key, key=_after)
            weight = sum(self._weight(u) for u in units[:after])
            if after and (best is None or weight > best[0]):
                best = (weight, victim, after)
        if best is None:
            return
        _, victim, after = best
        units = self._own[victim]
        cut = (after + 1) // 2
        stolen = self._own[thief] = units[:cut]
        del units[:cut]
        seconds = sum(unit.predicted for unit in stolen)
        self._own_seconds[thief] = seconds
        self._own_seconds[victim] -= seconds
        self._steals.append((thief, victim, sum(len(unit.tests) for unit in stolen)))

    def _insert_in_order(self, unit: WorkUnit) -> None:
        at = bisect.bisect_left(self._keys, _after(unit))
        self._ordered.insert(at, unit)
        self._keys.insert(at, _after(unit))

    def exhausted_for(self, agent: str) -> bool:
        """Whether nothing pending could ever be given to ``agent`` (in order: nothing after
        the last unit it took; otherwise nothing at all, since it may steal anything)."""
        if not self._in_order:
            return self.empty
        last = self._last.get(agent, -1)
        if self._keys and -self._keys[0] > last:
            return False
        return not any(units and _first(units[0]) > last for units in self._own.values())

    def _steal(self, thief: str, max_tests: int, *, follower: bool = False) -> bool:
        """Move the tail half of the busiest agent's pending units to ``thief``.

        The thief does not re-enter a module it left (whose fixtures would be set up again)
        while enough is pending elsewhere: the victim is the agent with the most pending
        work outside those modules, and the units are the later half of that work in its
        running order (the victim is about to run its head, with its fixtures warm), as long
        as that half fills ``max_tests`` or is as large as a half from anywhere. Otherwise
        the thief goes back: an idle agent beside pending work is worse, and so is an agent
        that must ask again after every test. The choice reads the agents' tallies, and the
        move is a slice of the victim's stack: a steal costs what it moves, not what is
        pending.

        A ``follower`` runs after the one test the thief holds, which it cannot start
        before it knows its next. With durations known and that test predicted long
        (``_LONG_HELD``) it is the one shortest unit among those tails, not a half: LPT
        gives a long test an agent of its own, and that agent, stealing half of the busiest
        share to know its next test, took the other long test and ran both in a row. Behind
        a quick test the half is stolen as by an agent that ran dry: one unit at a time, an
        agent of quick tests would ask again after every test.
        """
        left = self._visited.get(thief, set()) - {self._current.get(thief, "")}
        if follower and self._durations_known and self._held.get(thief, 0.0) >= _LONG_HELD:
            return self._steal_follower(thief, left)
        # Per rule, the busiest victim (ties to the earlier agent): outside the scopes the
        # thief left, and anywhere.
        best: list[tuple[float, str, int] | None] = [None, None]
        for victim, tally in self._tallies.items():
            if victim == thief:
                continue
            for rule, (count, weight) in enumerate(
                (tally.avoiding(left), (tally.count, tally.weight))
            ):
                chosen = best[rule]
                if count > 0 and (chosen is None or weight > chosen[0]):
                    best[rule] = (weight, victim, count)
        outside, anywhere = best
        if anywhere is None:
            return False
        # Keeping out saves set-ups and may cost round trips: it is worth it while the half
        # it steals there is no smaller than a window, or than a half from anywhere.
        enough = min(max_tests, (anywhere[2] + 1) // 2)
        if outside is not None and (outside[2] + 1) // 2 >= enough:
            choice, avoid = outside, left
        else:
            choice, avoid = anywhere, set()
        _, victim, count = choice
        units, tally = self._own[victim], self._tallies[victim]
        half = (count + 1) // 2
        # The bottom of its stack is the tail of its running order.
        stolen: list[WorkUnit]
        if avoid.isdisjoint(tally.scopes):
            stolen = units[:half]
            del units[:half]
        else:
            stolen = []
            kept: list[WorkUnit] = []
            seen = 0
            while len(stolen) < half:
                unit = units[seen]
                seen += 1
                (kept if unit.scope in avoid else stolen).append(unit)
            units[:seen] = kept
        self._give(victim, thief, stolen)
        return True

    def _steal_follower(self, thief: str, left: set[str]) -> bool:
        """The one shortest unit of the tail halves of the other agents' pending units.

        It reads every pending unit: it runs only behind a test predicted long, so that
        agent does not ask again for a while.
        """
        # Each agent's units in its running order (its stack reversed): the tail is last.
        others = {a: u[::-1] for a, u in self._own.items() if a != thief and u}
        candidates: dict[str, list[WorkUnit]] = {}
        for keep in (lambda u: u.scope not in left, lambda u: True):
            candidates = {
                a: kept for a, units in others.items() if (kept := list(filter(keep, units)))
            }
            if candidates:
                break
        if not candidates:
            return False
        # max() returns the first maximum, so ties go to the earlier agent.
        busiest = max(candidates, key=lambda a: sum(self._weight(u) for u in candidates[a]))
        tails = [(a, units[-((len(units) + 1) // 2) :]) for a, units in candidates.items()]
        # The shortest; among equals the busiest victim's, and the last in its order.
        victim, unit = min(
            ((a, u) for a, tail in tails for u in reversed(tail)),
            key=lambda pair: (pair[1].predicted, pair[0] != busiest),
        )
        units = self._own[victim]
        del units[next(at for at, u in enumerate(units) if u is unit)]
        self._give(victim, thief, [unit])
        return True

    def _give(self, victim: str, thief: str, stolen: list[WorkUnit]) -> None:
        """Hand units taken off ``victim``'s stack (in stack order) to ``thief``."""
        own, given, got = self._own[thief], self._tallies[victim], self._tallies[thief]
        for unit in stolen:
            weight = self._weight(unit)
            given.add(unit, weight, -1)
            got.add(unit, weight, 1)
        merge = bool(own)
        own.extend(stolen)
        if merge:
            own.sort(key=self._order, reverse=True)
        self._steals.append((thief, victim, sum(len(unit.tests) for unit in stolen)))

    def take_steals(self) -> list[tuple[str, str, int]]:
        """The steals since the last call, ``(thief, victim, tests)`` each, oldest first."""
        steals, self._steals = self._steals, []
        return steals

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
                self._seconds += seconds
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
                self._seconds += unit.predicted
            else:
                self._front.append(unit)
            self._count += len(tests)

    def add_agent(self, agent: str) -> None:
        """Register a new agent with nothing pending; it starts by taking or stealing."""
        if agent in self._own:
            raise ValueError(f"agent {agent!r} is already registered")
        self._own[agent] = []
        self._own_seconds[agent] = 0.0
        if not self._in_order:
            self._tallies[agent] = _Tally()

    def remove_agent(self, agent: str) -> list[int]:
        """Forget ``agent``; its pending units move to the front queue (in order: the shared
        list), still whole."""
        units = self._pending_units(agent)[::-1]  # in its running order
        del self._own[agent]
        del self._own_seconds[agent]
        self._tallies.pop(agent, None)
        if self._in_order:
            for unit in units:
                self._insert_in_order(unit)
        else:
            self._front.extend(units)
        return [test for unit in units for test in unit.tests]

    def drain(self) -> list[int]:
        """Remove and return every pending test (front queue first), e.g. when no agent is left."""
        units = list(self._front) + self._ordered[::-1]
        self._front.clear()
        self._ordered, self._keys = [], []
        for pending in self._own.values():
            units.extend(reversed(pending))
            pending.clear()
        for agent in self._tallies:
            self._tallies[agent] = _Tally()
        self._own_seconds = dict.fromkeys(self._own, 0.0)
        self._seconds = 0.0
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
