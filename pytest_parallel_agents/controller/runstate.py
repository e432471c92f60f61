"""What the controller records during one run: the plan, phase times, agents and outcomes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from pytest_parallel_agents.planning.sizing import Plan

# "plan": --agents-plan, nothing was run; the figures are the plan's.
Mode = Literal["parallel", "in-process", "degraded", "plan"]


@dataclass
class AgentRecord:
    """One agent's life, as measured by the controller and reported by the agent."""

    id: str
    suite: str
    host: str
    started_at: float
    pid: int | None = None
    ready_at: float | None = None
    finished_at: float | None = None
    tests: int = 0
    busy_seconds: float = 0.0
    peak_rss_kb: int | None = None
    coverage_seconds: float | None = None
    crashed: bool = False
    exit_detail: str = ""

    @property
    def spawn_seconds(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at

    @property
    def utilization(self) -> float | None:
        """Busy share of the time between ready and finished (or crashed)."""
        if self.ready_at is None or self.finished_at is None:
            return None
        alive = self.finished_at - self.ready_at
        return min(1.0, self.busy_seconds / alive) if alive > 0 else None


@dataclass(frozen=True)
class ShardRecord:
    """The CI shard this job runs, and the predicted seconds of every shard of the split."""

    index: int
    count: int
    source: str
    tests: int
    loads: list[float]
    durations_known: bool = False  # the split's own: a run may schedule by other figures


@dataclass
class RunState:
    """The controller's record of one session; metrics and the summary are built from it."""

    run_id: str
    budget: int
    mode: Mode = "in-process"
    reason: str = ""  # why the run is in-process, when it is
    plan: Plan | None = None
    shard: ShardRecord | None = None
    durations_known: bool = False
    session_started: float = field(default_factory=time.perf_counter)
    collected_at: float | None = None
    planned_at: float | None = None
    execution_started: float | None = None
    execution_finished: float | None = None
    # CPU seconds the controller process spent between those two (time.process_time).
    controller_cpu_seconds: float | None = None
    finished_at: float | None = None
    agents: dict[str, AgentRecord] = field(default_factory=dict)
    suite_started: dict[str, float] = field(default_factory=dict)
    suite_finished: dict[str, float] = field(default_factory=dict)
    tests_reported: int = 0
    restarts: int = 0
    agents_added: dict[str, int] = field(default_factory=dict)  # suite → agents it grew by
    discarded: int = 0  # results that arrived after -x/--maxfail stopped the run
    retries: int = 0
    tests_returned: int = 0  # given back unrun by an agent holding them, for dry agents
    degraded: dict[str, str] = field(default_factory=dict)  # suite → why it went sequential
    retried: list[str] = field(default_factory=list)  # node ids retried after a crash
    lost: list[str] = field(default_factory=list)  # node ids never reported (a bug if any)
    duplicates: list[str] = field(default_factory=list)  # node ids reported twice (dropped)
    durations: dict[str, float] = field(default_factory=dict)  # measured this run
    # Where an agent's test was when the run was interrupted (a report's longrepr): the
    # terminal shows it, as a plain run shows the interrupted test's line.
    interrupt_repr: object | None = None

    def suite_wall(self, suite: str) -> float | None:
        start, end = self.suite_started.get(suite), self.suite_finished.get(suite)
        return None if start is None or end is None else end - start
