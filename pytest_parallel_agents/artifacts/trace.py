"""The run's events as Chrome trace-event JSON (Perfetto, chrome://tracing): data in, data out.

One process per suite, one thread (track) per agent: the agent's life and start-up, a
complete ("X") event per test, instant events for crashes, retries, timeouts, steals and
tests given back. Times are microseconds since the session started.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_parallel_agents.artifacts.events import CONTROLLER

_US = 1_000_000
# Events drawn as a moment on the agent's track.
_INSTANT = frozenset({"agent_crashed", "retry", "timeout", "steal", "tests_given_back"})


def _us(seconds: float) -> int:
    return max(0, round(seconds * _US))


def chrome_trace(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The trace document of a run's event records."""
    records = list(records)
    suites: dict[str, int] = {}
    tracks: dict[str, tuple[int, int]] = {}
    started: dict[str, float] = {}
    ready: dict[str, float] = {}
    out: list[dict[str, Any]] = []

    def track(agent: str, suite: str | None = None) -> tuple[int, int]:
        if agent not in tracks:
            name = suite or ("controller" if agent == CONTROLLER else agent.rsplit("-", 1)[0])
            if name not in suites:
                suites[name] = len(suites) + 1
                out.append(_meta("process_name", suites[name], 0, name))
                out.append(_meta("process_sort_index", suites[name], 0, suites[name]))
            pid = suites[name]
            tid = len(tracks) + 1
            tracks[agent] = (pid, tid)
            out.append(_meta("thread_name", pid, tid, agent))
            out.append(_meta("thread_sort_index", pid, tid, tid))
        return tracks[agent]

    end = 0.0
    for record in records:
        event = record.get("event")
        t = float(record.get("t", 0.0))
        end = max(end, t)
        agent = record.get("agent")
        if event == "agent_started" and isinstance(agent, str):
            track(agent, record.get("suite"))
            started[agent] = t
        elif event == "agent_ready" and isinstance(agent, str):
            ready[agent] = t
            pid, tid = track(agent)
            begin = started.get(agent, t)
            out.append(_complete("start-up", "agent", begin, t - begin, pid, tid, {}))
        elif event == "test_finished" and isinstance(agent, str):
            pid, tid = track(agent)
            start, stop = float(record["start"]), float(record["stop"])
            end = max(end, stop)
            args = {"outcome": record["outcome"], "agent": agent, "duration": record["duration"]}
            if record.get("reruns"):
                args["reruns"] = record["reruns"]
            out.append(
                _complete(
                    str(record["test"]), str(record["outcome"]), start, stop - start, pid, tid, args
                )
            )
        elif event == "agent_finished" and isinstance(agent, str):
            pid, tid = track(agent)
            begin = started.get(agent, ready.get(agent, t))
            args = {"tests": record.get("tests"), "crashed": record.get("crashed")}
            out.append(_complete(f"agent {agent}", "agent", begin, t - begin, pid, tid, args))
        elif event in _INSTANT and isinstance(agent, str):
            pid, tid = track(agent)
            args = {k: v for k, v in record.items() if k not in ("event", "t")}
            out.append(_instant(str(event), t, pid, tid, args))
    return {
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {"generator": "pytest-parallel-agents", "seconds": round(end, 6)},
    }


def _meta(name: str, pid: int, tid: int, value: object) -> dict[str, Any]:
    key = "sort_index" if name.endswith("sort_index") else "name"
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": {key: value}}


def _complete(
    name: str,
    category: str,
    start: float,
    seconds: float,
    pid: int,
    tid: int,
    args: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "name": name,
        "cat": category,
        "ph": "X",
        "ts": _us(start),
        "dur": _us(max(0.0, seconds)),
        "pid": pid,
        "tid": tid,
        "args": dict(args),
    }


def _instant(name: str, t: float, pid: int, tid: int, args: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "cat": "run",
        "ph": "i",
        "s": "t",
        "ts": _us(t),
        "pid": pid,
        "tid": tid,
        "args": dict(args),
    }


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":")) + "\n"
