"""The events stream, the trace and the report of real runs, checked against their JUnit XML
and metrics (issue 17)."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import junit_cases, read_metrics, run

PROJECT = {
    "test_a.py": """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("no database")

@pytest.mark.parametrize("n", range(12))
def test_passes(n):
    pass

def test_fails():
    assert 1 == 2, "one is not two"

def test_errors(broken):
    pass

def test_skips():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known")
def test_xfails():
    assert False
""",
    "test_b.py": """
import os
import time
from pathlib import Path

def test_sees_its_own_agent_in_the_events_file_while_the_run_goes():
    # What `tail -f` shows: the controller flushed this agent's lines before sending it a test.
    lines = [l for l in Path(os.environ["EVENTS_FILE"]).read_text().splitlines() if l]
    agent = os.environ.get("PYTEST_AGENT_ID", "controller")
    assert any(f'"agent":"{agent}"' in l and '"agent_ready"' in l for l in lines) or (
        agent == "controller"
    )

def test_slow():
    time.sleep(0.3)
""",
}

# Two agents, one test each at least: small projects still run on both.
TWO_AGENTS = ("--agents", "2", "--agents-items", "1", "--agents-min-items", "1")

# JUnit's outcome per test_finished outcome.
JUNIT_OUTCOME = {
    "passed": "passed",
    "xpassed": "passed",
    "failed": "failure",
    "error": "error",
    "skipped": "skipped",
    "xfailed": "skipped",
}


def _junit_nodeid(classname: str, name: str) -> str:
    module, _, cls = classname.partition(".")
    return f"{module}.py::{cls + '::' if cls else ''}{name}"


def _observed_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[pytest.RunResult, dict[str, Path]]:
    for name, text in PROJECT.items():
        pytester.makepyfile(**{name[:-3]: text})
    out = pytester.path / "out"
    paths = {
        "events": out / "events.jsonl",
        "trace": out / "trace.json",
        "report": out / "report.html",
        "metrics": out / "metrics.json",
        "junit": out / "junit.xml",
    }
    monkeypatch.setenv("EVENTS_FILE", str(paths["events"]))
    result = run(
        pytester,
        *args,
        f"--agents-events={paths['events']}",
        f"--agents-trace={paths['trace']}",
        f"--agents-report={paths['report']}",
        f"--agents-metrics={paths['metrics']}",
        f"--junitxml={paths['junit']}",
    )
    return result, paths


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_every_test_once_in_events_trace_and_report_as_in_the_junit(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    result, paths = _observed_run(
        pytester, monkeypatch, "--agents", "2", "--agents-start", start, "-p", "no:randomly"
    )
    assert result.ret == 1, result.stdout.str()
    events = _events(paths["events"])
    assert events[0]["event"] == "run_started" and events[0]["mode"] == "parallel"
    assert events[-1]["event"] == "run_finished" and events[-1]["exitstatus"] == 1
    finished = [e for e in events if e["event"] == "test_finished"]
    cases = junit_cases(paths["junit"])
    junit_ids = Counter(
        {_junit_nodeid(classname, name): count for (classname, name, _), count in cases.items()}
    )
    junit = {_junit_nodeid(classname, name): outcome for classname, name, outcome in cases}
    assert sum(junit_cases(paths["junit"]).values()) == len(finished) == 18
    assert Counter(e["test"] for e in finished) == junit_ids
    assert {e["test"]: JUNIT_OUTCOME[e["outcome"]] for e in finished} == junit
    assert {e["outcome"] for e in finished} == {"passed", "failed", "error", "skipped", "xfailed"}
    fails = {e["test"]: e["reason"] for e in finished if e["outcome"] in ("failed", "error")}
    assert "one is not two" in fails["test_a.py::test_fails"]
    assert "no database" in fails["test_a.py::test_errors"]
    # Each finished test was started on its agent before; nothing after run_finished.
    started: dict[str, str] = {}
    for event in events:
        if event["event"] == "test_started":
            started[event["test"]] = event["agent"]
        elif event["event"] == "test_finished":
            assert started.pop(event["test"]) == event["agent"]
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)

    # Times agree with the metrics (schema 2): each test inside its agent's life.
    metrics = read_metrics(paths["metrics"])
    assert metrics["schema"] == 2
    lives = {a["id"]: (a["started_seconds"], a["ended_seconds"]) for a in metrics["agents"]}
    assert lives.keys() == {e["agent"] for e in events if e["event"] == "agent_started"}
    assert len(lives) == 2
    for event in finished:
        begin, end = lives[event["agent"]]
        assert begin - 0.01 <= event["start"] <= event["stop"] <= end + 0.01, (event, lives)
    slow = next(e for e in finished if e["test"] == "test_b.py::test_slow")
    assert slow["stop"] - slow["start"] >= 0.3
    assert events[-1]["t"] <= metrics["totals"]["wall_seconds"] + 0.05

    # The trace: a complete event per test, on its agent's track.
    trace = json.loads(paths["trace"].read_text())["traceEvents"]
    tracks = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in trace
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    tests = [e for e in trace if e["ph"] == "X" and e["cat"] != "agent"]
    assert Counter(e["name"] for e in tests) == junit_ids
    assert all(tracks[(e["pid"], e["tid"])] == e["args"]["agent"] for e in tests)

    # The report: one file, every test in its data.
    page = paths["report"].read_text()
    block = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    ids = [
        (data["files"][t[4]] + "::" if data["files"][t[4]] else "") + t[5] for t in data["tests"]
    ]
    assert Counter(ids) == junit_ids
    assert data["headline"].startswith(
        ("the critical path", "the work itself", "the longest test")
    ), data["headline"]


def test_a_crash_shows_as_crash_retry_and_replacement(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = pytester.path / "crashed-once"
    pytester.makepyfile(
        test_crash=f"""
import os, signal
from pathlib import Path

def test_dies_once():
    flag = Path({str(flag)!r})
    if not flag.exists():
        flag.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)

def test_other():
    pass
"""
    )
    events_path = pytester.path / "events.jsonl"
    # One agent per test (two tests would run in-process), in a subprocess: a kill that
    # reached the controller must not end this run.
    result = run(
        pytester,
        *TWO_AGENTS,
        f"--agents-events={events_path}",
        subprocess=True,
    )
    assert result.ret == 0, result.stdout.str()
    events = _events(events_path)
    crash = next(e for e in events if e["event"] == "agent_crashed")
    assert crash["test"] == "test_crash.py::test_dies_once"
    assert "SIGKILL" in crash["detail"]
    retry = next(e for e in events if e["event"] == "retry")
    assert (retry["test"], retry["agent"]) == (crash["test"], crash["agent"])
    replacement = next(e for e in events if e["event"] == "agent_started" and e["replaces"])
    assert replacement["replaces"] == crash["agent"]
    finished = [e for e in events if e["event"] == "test_finished"]
    assert Counter(e["test"] for e in finished) == Counter(
        ["test_crash.py::test_dies_once", "test_crash.py::test_other"]
    )
    dies = next(e for e in finished if e["test"] == crash["test"])
    assert (dies["agent"], dies["outcome"]) == (replacement["agent"], "passed")
    ended = next(
        e for e in events if e["event"] == "agent_finished" and e["agent"] == crash["agent"]
    )
    assert ended["crashed"] is True


def test_without_agents_every_test_is_on_the_controller(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, paths = _observed_run(pytester, monkeypatch)
    assert result.ret == 1
    events = _events(paths["events"])
    assert events[0]["event"] == "run_started" and events[0]["mode"] == "plain"
    finished = [e for e in events if e["event"] == "test_finished"]
    assert len(finished) == 18
    assert {e["agent"] for e in finished} == {"controller"}
    assert paths["report"].exists() and paths["trace"].exists()


@pytest.mark.parametrize("option", ["--agents-events", "--agents-trace", "--agents-report"])
def test_an_unwritable_path_is_one_usage_line(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    (pytester.path / "a-directory").mkdir()
    result = run(pytester, "--agents", "2", f"{option}=a-directory")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    errors = [line for line in result.stderr.lines if line.startswith("ERROR")]
    assert errors == [
        f"ERROR: {option}: {pytester.path / 'a-directory'} is a directory, expected a file path"
    ]


def test_two_outputs_may_not_share_a_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = run(pytester, "--agents-metrics=out.json", "--agents-trace=out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--agents-trace and --agents-metrics name the same file" in result.stderr.str()


def test_merge_draws_one_lane_per_job_and_agent(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            f"test_m{m}": "def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass"
            for m in range(4)
        }
    )
    for shard in (1, 2):
        result = run(
            pytester,
            *TWO_AGENTS,
            f"--agents-shard={shard}/2",
            f"--agents-events=shard-{shard}/events.jsonl",
            f"--junitxml=shard-{shard}/junit.xml",
        )
        assert result.ret == 0, result.stdout.str()
    merged = pytester.run(
        sys.executable,
        "-m",
        "pytest_parallel_agents",
        "merge",
        "shard-1",
        "shard-2",
        "--out",
        "out",
    )
    assert merged.ret == 0, merged.stderr.str()
    assert "merged 2 events files (12 tests) -> out/report.html" in merged.stdout.str()
    page = (pytester.path / "out" / "report.html").read_text()
    block = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    assert {(lane["job"], lane["agent"]) for lane in data["lanes"]} == {
        (job, agent) for job in ("shard-1", "shard-2") for agent in ("unit-0", "unit-1")
    }
    assert len(data["tests"]) == 12
    assert data["run"]["mode"] == "merged"
