"""The run metrics (SPEC §7) and the terminal lines that summarise them: data in, data out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pytest_parallel_agents.controller.runstate import AgentRecord, RunState, ShardRecord
from pytest_parallel_agents.planning.sizing import Plan

# 2: agents gain started_seconds and ended_seconds, totals controller_cpu_seconds.
SCHEMA = 2
# Terminal categories counted in the totals, under the metrics' names.
_OUTCOMES = {
    "passed": "passed",
    "failed": "failed",
    "skipped": "skipped",
    "error": "errors",
    "xfailed": "xfailed",
    "xpassed": "xpassed",
}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _between(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def agent_metrics(agent: AgentRecord, origin: float) -> dict[str, Any]:
    """One agent's record; ``origin``: the session's start, which its times count from."""
    return {
        "id": agent.id,
        "suite": agent.suite,
        "host": agent.host,
        "pid": agent.pid,
        "started_seconds": _round(_between(origin, agent.started_at)),
        "ended_seconds": _round(_between(origin, agent.finished_at)),
        "spawn_seconds": _round(agent.spawn_seconds),
        "tests": agent.tests,
        "busy_seconds": _round(agent.busy_seconds),
        "utilization": _round(agent.utilization),
        "peak_rss_mb": None if agent.peak_rss_kb is None else round(agent.peak_rss_kb / 1024, 1),
        "coverage_save_seconds": _round(agent.coverage_seconds),
        "crashed": agent.crashed,
        "exit": agent.exit_detail or None,
    }


def build_metrics(run: RunState, outcomes: Mapping[str, int]) -> dict[str, Any]:
    """The metrics document; ``outcomes`` are the terminal's counts per category."""
    suites: dict[str, Any] = {}
    waves = {
        suite.name: (number, wave.exclusive)
        for number, wave in enumerate(run.plan.waves if run.plan else (), start=1)
        for suite in wave.suites
    }
    if run.plan is not None:
        for suite in run.plan.suites:
            suites[suite.name] = {
                "tests": suite.tests,
                "agents": suite.agents if run.mode != "in-process" else 0,
                "wave": waves[suite.name][0],
                "exclusive": waves[suite.name][1],
                "agents_added": run.agents_added.get(suite.name, 0),
                "predicted_seconds": _round(suite.predicted_seconds)
                if run.durations_known
                else None,
                "wall_seconds": _round(run.suite_wall(suite.name)),
            }
    totals: dict[str, Any] = {"tests": run.tests_reported}
    for category, name in _OUTCOMES.items():
        totals[name] = int(outcomes.get(category, 0))
    distribution_end = run.execution_started or run.planned_at
    totals.update(
        restarts=run.restarts,
        discarded_after_stop=run.discarded,
        retries=run.retries,
        tests_returned=run.tests_returned,
        collect_seconds=_round(_between(run.session_started, run.collected_at)),
        distribution_seconds=_round(_between(run.collected_at, distribution_end)),
        execution_seconds=_round(_between(run.execution_started, run.execution_finished)),
        aggregation_seconds=_round(_between(run.execution_finished, run.finished_at)),
        wall_seconds=_round(_between(run.session_started, run.finished_at)),
        controller_cpu_seconds=_round(run.controller_cpu_seconds),
    )
    return {
        "schema": SCHEMA,
        "run_id": run.run_id,
        "mode": run.mode,
        "reason": run.reason or None,
        "budget": run.budget,
        "suites": suites,
        "agents": [agent_metrics(a, run.session_started) for a in run.agents.values()],
        "totals": totals,
        "shard": None
        if run.shard is None
        else {
            "index": run.shard.index,
            "count": run.shard.count,
            "source": run.shard.source,
            "tests": run.shard.tests,
            "predicted_seconds": [round(x, 3) for x in run.shard.loads]
            if run.shard.durations_known
            else None,
        },
        "degraded": dict(run.degraded),
        "retried": list(run.retried),
        "lost": list(run.lost),
        "duplicates": list(run.duplicates),
    }


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def shard_lines(shard: ShardRecord) -> list[str]:
    """Which CI shard this job runs, next to the predicted seconds of every shard."""
    if shard.durations_known:
        loads = ", ".join(f"{load:.1f}" for load in shard.loads)
        predicted = f"; predicted seconds per shard: {loads}"
    else:
        predicted = "; no recorded durations: shards balanced by test count"
    state = f"{shard.tests} tests" if shard.tests else "empty, nothing to run"
    return [f"shard {shard.index}/{shard.count} from {shard.source}: {state}{predicted}"]


def plan_lines(plan: Plan, durations_known: bool) -> list[str]:
    """The plan as a small table: suite, tests, predicted seconds, agents, wave."""
    lines = [f"{'suite':<16} {'tests':>6} {'predicted s':>12} {'agents':>7} {'wave':>5}"]
    for number, wave in enumerate(plan.waves, start=1):
        for suite in wave.suites:
            predicted = (
                f"{suite.predicted_seconds:.2f}"
                if durations_known and suite.predicted_seconds is not None
                else "-"
            )
            tag = f"{number}{'x' if wave.exclusive else ''}"
            lines.append(
                f"{suite.name:<16} {suite.tests:>6} {predicted:>12} {suite.agents:>7} {tag:>5}"
            )
    if any(wave.exclusive for wave in plan.waves):
        lines.append("x: an exclusive suite, which runs while nothing else runs")
    mode = "in-process (one agent at a time)" if plan.in_process else "parallel"
    lines.append(
        f"budget {plan.budget}, peak {plan.peak_agents} agents, {len(plan.waves)} wave(s), {mode}"
        + ("" if durations_known else "; no recorded durations, predictions omitted")
    )
    return lines


def summary_lines(run: RunState) -> list[str]:
    """The terminal's "parallel agents" section."""
    if run.mode == "in-process":
        return [f"in-process: {run.reason}" if run.reason else "in-process"]
    lines = [f"{'suite':<16} {'agents':>6} {'tests':>6} {'wall s':>8} {'util':>6} {'restarts':>8}"]
    by_suite: dict[str, list[AgentRecord]] = {}
    for agent in run.agents.values():
        by_suite.setdefault(agent.suite, []).append(agent)
    for suite, agents in by_suite.items():
        tests = sum(a.tests for a in agents)
        utils = [u for a in agents if (u := a.utilization) is not None]
        util = f"{100 * sum(utils) / len(utils):.0f}%" if utils else "-"
        wall = run.suite_wall(suite)
        restarts = sum(1 for a in agents if a.crashed)
        lines.append(
            f"{suite:<16} {len(agents):>6} {tests:>6} "
            f"{(f'{wall:.2f}' if wall is not None else '-'):>8} {util:>6} {restarts:>8}"
        )
    spawn = [s for a in run.agents.values() if (s := a.spawn_seconds) is not None]
    if spawn:
        mean = sum(spawn) / len(spawn)
        lines.append(
            f"{len(run.agents)} agents, mode {run.mode}, mean start-up {mean:.2f} s"
            + (f", {run.tests_returned} tests given back" if run.tests_returned else "")
        )
    for suite, why in run.degraded.items():
        lines.append(f"DEGRADED: suite {suite} ran its remaining tests on one agent ({why})")
    if run.retried:
        shown = ", ".join(run.retried[:5]) + (" ..." if len(run.retried) > 5 else "")
        lines.append(f"retried on a fresh agent after killing one: {len(run.retried)} ({shown})")
    if run.lost:
        lines.append(f"ERROR: {len(run.lost)} tests were never reported by any agent")
    if run.duplicates:
        lines.append(f"ERROR: {len(run.duplicates)} duplicate reports were dropped")
    return lines
