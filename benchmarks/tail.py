"""The end of a run of many quick tests: batch sizes, the controller's cost per dispatch, the tail.

    python benchmarks/tail.py [--sizes 20000,60000] [--agents 4,16] [--real 20000,60000]
                              [--real-agents 2] [--reps 3] [--out benchmarks/out/tail]
                              [--no-sim] [--no-real]

1. Simulated (``simulate``): ``scheduling.SuiteQueue`` driven with the controller's own calls
   (``Controller.dispatch``: ``hold_limit``, ``refill``, ``top_up``, ``exhausted_for``, then
   ``reclaim_offer``/``withdraw``/``give_back`` for an agent running dry) by agents in
   simulated time that behave as the real ones do (``agent.session``, ``agent.channel``): an
   agent starts a test only once it holds the next one or was told to finish, and reports
   finished tests every 10 ms, or at once when it holds fewer than two and must wait. Every
   test costs 0.3 ms of agent time plus its own body (about 20 µs, lognormal), and the agents
   run at different speeds (0.75-1.3x: agents share cores with each other and with the
   controller). "durations" plans with a previous run's figures of the bodies (each figure
   off by a lognormal factor, as the cached figures of trivial tests are): what a second
   local run does. The controller is one thread: each dispatch costs what its queue calls
   took, timed here, and the batch leaves only after them. Reported per configuration, for
   both orders (``--agents-order collection``, the default, and ``longest-first``): RunTests
   batches, tests per batch over the run and in the tail (batches sent after 90% of the tests
   had finished), batches of one unit while at least 100 tests were pending, the queue's cost
   per dispatch (median, 99th percentile, max, total), the makespan over the ideal (the work
   over the agents' summed speed) and the last 10% of the tests' time over a tenth of the
   makespan (1.0: no tail).
2. Real runs of a generated suite of trivial tests (``--real`` sizes, 100 tests a file) under
   ``--agents N`` twice: the first run plans without durations, the second with the first's
   figures from pytest's cache (``artifacts.durations.CACHE_KEY``), as a developer's second
   local run does. Beside them plain pytest and ``xdist -n N`` (``--dist load``), each with
   ``-p no:cacheprovider``. Repetitions interleave the variants, in a seeded shuffled order
   (the two agents runs stay in order: the second needs the first's cache). The ``tailprobe``
   plugin records, in the controller, every ``top_up`` (batch size, cost) and when each
   result came back: the tables give medians over the repetitions of the wall time, the
   results phase (first to last result), the last 10% of the results' time over a tenth of
   the phase, RunTests batches and their sizes, and the controller's queue time.

Writes OUT/tail.md (the tables, also printed) and OUT/tail.json.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402

from pytest_parallel_agents.planning.scheduling import (  # noqa: E402
    SuiteQueue,
    WorkUnit,
    hold_limit,
    refill,
    window_for,
    withdraw,
)

PER_TEST = 3e-4  # an agent's own cost per test: run protocol, report, message share
BODY = 2e-5  # a trivial test's body, median
FLUSH = 0.01  # agent.channel._FLUSH_DELAY
LATENCY = 1e-4  # one way, controller to agent or back
PER_FILE = 100
TAIL = 0.9  # the tail begins when this share of the tests has finished


# --------------------------------------------------------------------------- simulation


@dataclass
class SimResult:
    tests: int
    agents: int
    known: bool
    order: str
    makespan: float = 0.0
    ideal: float = 0.0
    last_tenth: float = 0.0  # the last 10% of the tests' time over a tenth of the makespan
    batches: list[int] = field(default_factory=list)
    tail_batches: list[int] = field(default_factory=list)
    ones: int = 0  # batches of a single unit sent while at least 100 tests were pending
    costs: list[float] = field(default_factory=list)  # seconds per dispatch
    batch_costs: list[float] = field(default_factory=list)  # ... of those that sent a batch


class _Agent:
    def __init__(self, name: str, speed: float) -> None:
        self.name = name
        self.speed = speed
        self.queue: deque[int] = deque()  # what the agent received and has not run
        self.in_flight: deque[int] = deque()  # what the controller sent and saw no result of
        self.unreported: list[int] = []
        self.last_send = 0.0
        self.running = False
        self.finishing = False  # told to shut down
        self.waiting = False  # holds fewer than two, blocked for the controller's answer
        self.returning: list[tuple[int, ...]] | None = None  # a ReturnTests not read yet
        self.awaiting_return = False


class Simulation:
    """One suite on ``agents`` agents, in simulated time; ``run()`` returns the result."""

    def __init__(
        self, tests: int, agents: int, *, known: bool, in_order: bool, seed: int = 0
    ) -> None:
        rng = random.Random(seed)
        self.body = [BODY * rng.lognormvariate(0.0, 0.6) for _ in range(tests)]
        recorded = [b * rng.lognormvariate(0.0, 0.5) for b in self.body]
        units = [
            WorkUnit((i,), round(recorded[i], 6) if known else 1.0, scope=f"m{i // PER_FILE}")
            for i in range(tests)
        ]
        names = [f"unit-{k}" for k in range(agents)]
        self.agents = {
            name: _Agent(name, rng.uniform(0.75, 1.3)) for name in names
        }  # seconds per second of work: above 1 is slower
        self.queue = SuiteQueue(units, names, durations_known=known, in_order=in_order)
        self.result = SimResult(tests, agents, known, "collection" if in_order else "longest-first")
        self.events: list[tuple[float, int, Callable[[float], None]]] = []
        self.ticket = itertools.count()
        self.controller_free = 0.0
        self.done = 0
        self.busy = 0.0
        self.finished_at: list[float] = []
        self.reclaiming: str | None = None
        self.n = agents

    def at(self, when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self.events, (when, next(self.ticket), action))

    def run(self) -> SimResult:
        for agent in self.agents.values():
            self.at(0.0, lambda now, a=agent: self.controller(now, a, []))
        while self.events:
            now, _, action = heapq.heappop(self.events)
            action(now)
        result = self.result
        if self.done != result.tests:
            raise RuntimeError(f"ran {self.done} of {result.tests} tests")
        result.makespan = max(self.finished_at)
        work = sum(self.body) + PER_TEST * result.tests
        result.ideal = work / sum(1 / a.speed for a in self.agents.values())
        self.finished_at.sort()
        t90 = self.finished_at[math.ceil(TAIL * result.tests) - 1]
        result.last_tenth = (result.makespan - t90) / (result.makespan * (1 - TAIL))
        return result

    # -- the agent (agent.session._serve, agent.channel.ResultBuffer) ------------------

    def agent_step(self, now: float, agent: _Agent) -> None:
        if agent.running:
            return
        if agent.returning is not None:
            back = withdraw(agent.queue, agent.returning)  # between two tests
            agent.returning = None
            self.at(now + LATENCY, lambda t: self.returned(t, agent, back))
        if len(agent.queue) >= 2 or (agent.finishing and agent.queue):
            test = agent.queue.popleft()
            agent.running = True
            agent.waiting = False
            seconds = (PER_TEST + self.body[test]) * agent.speed
            self.at(now + seconds, lambda t: self.test_ended(t, agent, test))
        elif not agent.finishing and not agent.waiting:
            agent.waiting = True
            self.flush(now, agent)

    def test_ended(self, now: float, agent: _Agent, test: int) -> None:
        agent.running = False
        self.done += 1
        self.busy += (PER_TEST + self.body[test]) * agent.speed
        self.finished_at.append(now)
        agent.unreported.append(test)
        if now - agent.last_send >= FLUSH:
            self.flush(now, agent)
        self.agent_step(now, agent)

    def flush(self, now: float, agent: _Agent) -> None:
        if agent.unreported:
            reported, agent.unreported = agent.unreported, []
            agent.last_send = now
            self.at(now + LATENCY, lambda t: self.controller(t, agent, reported))

    def receive(self, now: float, agent: _Agent, batch: Sequence[int], shutdown: bool) -> None:
        agent.queue.extend(batch)
        if shutdown:
            agent.finishing = True
        agent.waiting = False
        self.agent_step(now, agent)

    # -- the controller (controller.loop.Controller.dispatch and _reclaim) -------------

    def controller(self, now: float, agent: _Agent, reported: Sequence[int]) -> None:
        start = max(now, self.controller_free)
        for test in reported:
            agent.in_flight.remove(test)
        began = time.perf_counter()
        batch, shutdown = self.dispatch(agent)
        cost = time.perf_counter() - began
        self.result.costs.append(cost)
        if batch:
            self.result.batch_costs.append(cost)
        self.controller_free = start + cost
        if batch or shutdown:
            self.at(
                self.controller_free + LATENCY,
                lambda t: self.receive(t, agent, batch, shutdown),
            )

    def dispatch(self, agent: _Agent) -> tuple[list[int], bool]:
        if agent.finishing:
            return [], False
        queue = self.queue
        window = window_for(self.done, self.busy)
        limit = hold_limit(window, queue.total_pending, self.n)
        want = refill(len(agent.in_flight), limit)
        if not want:
            return [], False
        pending = queue.total_pending
        batch = queue.top_up(agent.name, len(agent.in_flight), want)
        if batch:
            agent.in_flight.extend(batch)
            self.result.batches.append(len(batch))
            if self.done >= TAIL * self.result.tests:
                self.result.tail_batches.append(len(batch))
            if len(batch) == 1 and pending >= 100:
                self.result.ones += 1
        agent.awaiting_return = False
        if not queue.exhausted_for(agent.name):
            return batch, False
        if len(agent.in_flight) <= 2:
            self.reclaim(agent)
        if len(agent.in_flight) <= 1:
            if self.reclaiming is not None:
                agent.awaiting_return = True
                return batch, False
            agent.finishing = True
            return batch, True
        return batch, False

    def reclaim(self, asking: _Agent) -> None:
        if self.reclaiming is not None:
            return
        holdings = {
            name: other.in_flight
            for name, other in self.agents.items()
            if other is not asking and not other.finishing
        }
        offer = self.queue.reclaim_offer(holdings, asking.name)
        if offer is not None:
            victim, units = offer
            self.reclaiming = victim
            target = self.agents[victim]

            def deliver(now: float) -> None:
                target.returning = units
                self.agent_step(now, target)

            self.at(self.controller_free + LATENCY, deliver)

    def returned(self, now: float, agent: _Agent, units: Sequence[tuple[int, ...]]) -> None:
        start = max(now, self.controller_free)
        began = time.perf_counter()
        if self.reclaiming == agent.name:
            self.reclaiming = None
        for unit in units:
            for test in unit:
                agent.in_flight.remove(test)
        if units:
            self.queue.give_back(units)
        self.controller_free = start + time.perf_counter() - began
        hungry = [
            a
            for a in self.agents.values()
            if not a.finishing and len(a.in_flight) < 2 and (a.waiting or a.awaiting_return)
        ]
        for other in sorted(hungry, key=lambda a: len(a.in_flight)):
            self.controller(self.controller_free, other, [])


def simulate(tests: int, agents: int, *, known: bool, in_order: bool, seed: int = 0) -> SimResult:
    return Simulation(tests, agents, known=known, in_order=in_order, seed=seed).run()


def _pct(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def sim_table(results: Sequence[SimResult]) -> list[str]:
    lines = [
        "| tests | agents | durations | order | batches | tests/batch median (tail) "
        "| one-unit batches | µs per RunTests: median, p99, max | queue total ms "
        "| makespan / ideal | last 10% / even |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tail = statistics.median(r.tail_batches) if r.tail_batches else 0
        lines.append(
            f"| {r.tests:,} | {r.agents} | {'known' if r.known else 'none'} | {r.order} "
            f"| {len(r.batches):,} | {statistics.median(r.batches):.0f} ({tail:.0f}) "
            f"| {r.ones:,} | {statistics.median(r.batch_costs) * 1e6:.0f}, "
            f"{_pct(r.batch_costs, 0.99) * 1e6:.0f}, {max(r.batch_costs) * 1e6:.0f} "
            f"| {sum(r.costs) * 1e3:.0f} | {r.makespan / r.ideal:.3f} | {r.last_tenth:.2f} |"
        )
    return lines


# --------------------------------------------------------------------------- real runs


@dataclass
class RealRun:
    tests: int
    variant: str
    rep: int
    command: str
    rc: int | None = None
    wall_s: float | None = None
    results_s: float | None = None  # first to last call-phase result, in the controller
    last_tenth: float | None = None
    batches: int | None = None
    batch_median: float | None = None
    tail_batch_median: float | None = None
    ones: int | None = None
    queue_ms: float | None = None
    queue_max_ms: float | None = None
    agents_started: int | None = None
    summary: str = ""


def write_suite(root: Path, tests: int) -> None:
    marker = root / ".tail_suite"
    if marker.exists() and marker.read_text() == str(tests):
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    for f in range(math.ceil(tests / PER_FILE)):
        count = min(PER_FILE, tests - f * PER_FILE)
        body = "".join(f"def test_{t}():\n    pass\n\n\n" for t in range(count))
        (root / f"test_t{f:04d}.py").write_text(body)
    marker.write_text(str(tests))


def _probe(path: Path, record: RealRun) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    reports: list[float] = data["reports"]
    calls: list[list[Any]] = data["calls"]
    if not reports:
        return
    first, last = reports[0], reports[-1]
    record.results_s = last - first
    t90 = reports[math.ceil(TAIL * len(reports)) - 1]
    if last > first:
        record.last_tenth = (last - t90) / ((last - first) * (1 - TAIL))
    sizes = [c[3] for c in calls if c[3]]
    tail = [c[3] for c in calls if c[3] and c[0] >= t90]
    record.batches = len(sizes)
    record.batch_median = statistics.median(sizes) if sizes else None
    record.tail_batch_median = statistics.median(tail) if tail else None
    record.ones = sum(1 for c in calls if c[3] == 1 and c[4] >= 100)
    record.queue_ms = sum(c[5] for c in calls) * 1e3
    record.queue_max_ms = max(c[5] for c in calls) * 1e3
    record.agents_started = len({c[1] for c in calls})


def real_run(
    root: Path, tests: int, variant: str, rep: int, n: int, logdir: Path, timeout: float
) -> RealRun:
    missing = root / "no-such-durations.json"
    base = [sys.executable, "-m", "pytest", "-q"]
    if variant == "plain":
        args = ["-p", "no:cacheprovider", "-p", "no:parallel_agents"]
    elif variant.startswith("xdist"):
        args = ["-p", "no:cacheprovider", "-p", "no:parallel_agents", "-n", str(n)]
        args += ["--dist", "load"]
    else:
        args = ["-p", "tailprobe", "--agents", str(n), f"--agents-durations={missing}"]
    cmd = base + args
    record = RealRun(tests, variant, rep, shlex.join(cmd))
    slug = variant.replace(" ", "_")
    probe = logdir / f"{tests}.{slug}.rep{rep}.probe.json"
    probe.unlink(missing_ok=True)
    env = harness._scrubbed_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    env["BENCH_TAIL_OUT"] = str(probe)
    env["PY_COLORS"] = "0"
    log = logdir / f"{tests}.{slug}.rep{rep}.log"
    start = time.perf_counter()
    with open(log, "wb") as out:
        try:
            proc = subprocess.run(
                cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=timeout, check=False,
            )  # fmt: skip
            record.rc = proc.returncode
        except subprocess.TimeoutExpired:
            record.rc = None
    record.wall_s = time.perf_counter() - start
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    record.summary = next((ln.strip("= ") for ln in reversed(lines) if "passed" in ln), "")
    if variant.startswith("agents"):
        _probe(probe, record)
    return record


def _med(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def real_table(runs: Sequence[RealRun], variants: Sequence[str]) -> list[str]:
    lines = [
        "| tests | variant | ok/runs | wall s | x plain | results s | last 10% / even "
        "| RunTests | tests/RunTests median (tail) | one-unit | queue ms (max) | agents |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tests in sorted({r.tests for r in runs}):
        mine = [r for r in runs if r.tests == tests]
        plain = _med([r.wall_s for r in mine if r.variant == "plain" and r.rc == 0])
        for variant in variants:
            rows = [r for r in mine if r.variant == variant]
            ok = [r for r in rows if r.rc == 0]
            if not rows:
                continue
            wall = _med([r.wall_s for r in ok])
            ratio = _f(wall / plain) if wall and plain else "-"
            is_agents = variant.startswith("agents")
            lines.append(
                f"| {tests:,} | {variant} | {len(ok)}/{len(rows)} | {_f(wall)} | {ratio} "
                f"| {_f(_med([r.results_s for r in ok])) if is_agents else '-'} "
                f"| {_f(_med([r.last_tenth for r in ok])) if is_agents else '-'} "
                f"| {_f(_med([r.batches for r in ok]), 0) if is_agents else '-'} "
                + (
                    f"| {_f(_med([r.batch_median for r in ok]), 0)} "
                    f"({_f(_med([r.tail_batch_median for r in ok]), 0)}) "
                    f"| {_f(_med([r.ones for r in ok]), 0)} "
                    f"| {_f(_med([r.queue_ms for r in ok]), 0)} "
                    f"({_f(_med([r.queue_max_ms for r in ok]), 1)}) "
                    f"| {_f(_med([r.agents_started for r in ok]), 0)} |"
                    if is_agents
                    else "| - | - | - | - |"
                )
            )
    return lines


# --------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_ints, default=[20000, 60000])
    parser.add_argument("--agents", type=_ints, default=[4, 16])
    parser.add_argument("--real", type=_ints, default=[20000, 60000])
    parser.add_argument("--real-agents", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "tail")
    parser.add_argument("--no-sim", action="store_true")
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    info = harness.machine_info()
    report = [
        "# Tail benchmark",
        "",
        f"`{shlex.join([sys.executable, *sys.argv])}`; git {info['git']}, "
        f"{info['nproc']} CPUs, load {info['loadavg_at_start']}, Python {info['python']}, "
        f"pytest {info['pytest']}, xdist {info['pytest-xdist']}.",
        "",
    ]
    state: dict[str, Any] = {"machine": info, "argv": sys.argv}
    if not args.no_sim:
        results = [
            simulate(tests, agents, known=known, in_order=in_order)
            for tests in args.sizes
            for agents in args.agents
            for known in (False, True)
            for in_order in (True, False)
        ]
        state["simulated"] = [
            {
                k: v
                for k, v in asdict(r).items()
                if k not in ("batches", "tail_batches", "costs", "batch_costs")
            }
            | {"dispatches": len(r.costs), "queue_seconds": sum(r.costs)}
            for r in results
        ]
        report += ["## Simulated", "", *sim_table(results), ""]
        print("\n".join(report), flush=True)
    if not args.no_real:
        n = args.real_agents
        variants = ["plain", f"xdist -n{n}", f"agents {n} first", f"agents {n} second"]
        runs: list[RealRun] = []
        logdir = out / "logs"
        logdir.mkdir(exist_ok=True)
        for tests in args.real:
            root = out / "suites" / f"trivial{tests}"
            write_suite(root, tests)
            for rep in range(1, args.reps + 1):
                slots: list[list[str]] = [[variants[0]], [variants[1]], variants[2:]]
                random.Random(f"{tests}-{rep}").shuffle(slots)
                for slot in slots:
                    for variant in slot:
                        if variant.endswith("first"):
                            shutil.rmtree(root / ".pytest_cache", ignore_errors=True)
                        record = real_run(root, tests, variant, rep, n, logdir, args.timeout)
                        runs.append(record)
                        print(
                            f"{tests} {variant} rep {rep}: rc={record.rc} "
                            f"{_f(record.wall_s)} s {record.summary}",
                            flush=True,
                        )
                state["real"] = [asdict(r) for r in runs]
                (out / "tail.json").write_text(json.dumps(state, indent=2) + "\n")
        real = [f"## Real runs, {args.reps} repetitions", "", *real_table(runs, variants), ""]
        report += real
        print("\n".join(real), flush=True)
    (out / "tail.json").write_text(json.dumps(state, indent=2) + "\n")
    (out / "tail.md").write_text("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
