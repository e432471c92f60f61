"""The self-contained HTML report of a run (``--agents-report``): data in, a page out.

One file with its data, script and style inline, no fetch: a lane per agent on a canvas
(every test a bar), marks for what happened to the agents, the run's figures, the plan
beside what happened, what bounded the wall time, the slowest tests and the failures.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from pytest_parallel_agents.artifacts.report_page import PAGE
from pytest_parallel_agents.artifacts.timeline import Timeline, headline, what_bounded

# Bars' times travel as integers in these units (0.1 ms): a fifth of the size of floats.
_TICKS_PER_SECOND = 10_000
_SLOWEST = 25


def report_data(timeline: Timeline, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the page draws, in a compact form: node ids split into file and name, times
    as integers."""
    bounds = what_bounded(timeline, metrics)
    outcomes: dict[str, int] = {}
    files: dict[str, int] = {}
    tests: list[list[Any]] = []
    lanes: list[dict[str, Any]] = []
    metric_agents = {
        agent.get("id"): agent for agent in (metrics or {}).get("agents") or () if agent
    }
    for number, lane in enumerate(timeline.lanes):
        figures = metric_agents.get(lane.agent, {})
        lanes.append(
            {
                "agent": lane.agent,
                "suite": lane.suite,
                "host": lane.host,
                "job": lane.job,
                "started": lane.started,
                "ready": lane.ready,
                "finished": lane.finished,
                "crashed": lane.crashed,
                "replaces": lane.replaces,
                "busy": round(lane.busy, 3),
                "tests": len(lane.tests),
                "utilization": figures.get("utilization"),
            }
        )
        for start, stop, outcome, test in sorted(lane.tests):
            path, sep, name = test.partition("::")
            file = files.setdefault(path if sep else "", len(files))
            code = outcomes.setdefault(outcome, len(outcomes))
            tests.append(
                [
                    number,
                    round(start * _TICKS_PER_SECOND),
                    round(stop * _TICKS_PER_SECOND),
                    code,
                    file,
                    name if sep else test,
                ]
            )
    slowest = sorted(
        (
            (stop - start, test, lane.agent, outcome)
            for lane in timeline.lanes
            for start, stop, outcome, test in lane.tests
        ),
        key=lambda entry: -entry[0],
    )[:_SLOWEST]
    totals = dict((metrics or {}).get("totals") or timeline.totals or {})
    suites = []
    metric_suites = (metrics or {}).get("suites") or {}
    for suite in timeline.suites:
        measured = (
            metric_suites.get(suite.get("name"), {}) if isinstance(metric_suites, dict) else {}
        )
        suites.append(
            {
                "name": suite.get("name"),
                "tests": suite.get("tests"),
                "agents": suite.get("agents"),
                "wave": suite.get("wave"),
                "exclusive": suite.get("exclusive"),
                "predicted_seconds": suite.get("predicted_seconds"),
                "wall_seconds": measured.get("wall_seconds"),
                "agents_added": measured.get("agents_added"),
            }
        )
    return {
        "run": {k: v for k, v in timeline.run.items() if k != "suites"},
        "wall": round(timeline.wall, 6),
        "headline": headline(timeline, bounds),
        "bounds": [[b.what, round(b.seconds, 3), b.detail, b.kind] for b in bounds],
        "totals": totals,
        "suites": suites,
        "lanes": lanes,
        "outcomes": list(outcomes),
        "files": list(files),
        "ticks": _TICKS_PER_SECOND,
        "tests": tests,
        "marks": [[round(m.t, 4), m.kind, m.agent, m.text] for m in timeline.marks],
        "failures": [[f.test, f.outcome, f.agent, f.reason] for f in timeline.failures],
        "slowest": [[round(s, 4), test, agent, outcome] for s, test, agent, outcome in slowest],
        "degraded": (metrics or {}).get("degraded") or {},
        "lost": (metrics or {}).get("lost") or [],
        "duplicates": (metrics or {}).get("duplicates") or [],
    }


def render(timeline: Timeline, metrics: Mapping[str, Any] | None, *, title: str) -> str:
    """The report page."""
    data = json.dumps(report_data(timeline, metrics), separators=(",", ":"))
    # Inside <script>, "</" could end the element; JSON allows "<\/" for it.
    data = data.replace("</", "<\\/")
    return PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)
