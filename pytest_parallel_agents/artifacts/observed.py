"""At the end of a run: the last event, then the trace and the HTML report built from them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_parallel_agents.artifacts.events import JsonLinesSink
from pytest_parallel_agents.artifacts.report import render
from pytest_parallel_agents.artifacts.timeline import build_timeline
from pytest_parallel_agents.artifacts.trace import chrome_trace, dumps
from pytest_parallel_agents.controller.events import RunEvents
from pytest_parallel_agents.files import write_atomically


def write_observations(
    events: RunEvents,
    metrics: Mapping[str, Any],
    exitstatus: int,
    *,
    title: str,
    trace_path: Path | None,
    report_path: Path | None,
) -> list[str]:
    """Emit run_finished, close the events file, write the trace and the report; returns
    what could not be written, one line each."""
    events.run_finished(exitstatus=exitstatus, totals=metrics.get("totals") or {})
    problems: list[str] = []
    for sink in events.sinks:
        if isinstance(sink, JsonLinesSink):
            sink.close()
            if sink.error:
                problems.append(sink.error)
    if trace_path is not None:
        try:
            write_atomically(trace_path, dumps(chrome_trace(events.records)))
        except OSError as exc:
            problems.append(f"cannot write the trace to {trace_path}: {exc}")
    if report_path is not None:
        page = render(build_timeline(events.records), metrics, title=title)
        try:
            write_atomically(report_path, page)
        except OSError as exc:
            problems.append(f"cannot write the report to {report_path}: {exc}")
    return problems
