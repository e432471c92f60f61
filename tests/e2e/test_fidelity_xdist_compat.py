"""Agents look like pytest-xdist workers to plugins that key resources on them (§1.8)."""

from __future__ import annotations

import json

import pytest
from helpers import BARRIER_SOURCE, run, summary_counts

# What pytest-django does to name each worker's test database: the xdist worker id from
# config.workerinput. Every test records what it saw.
PROJECT = """
import json
import os

import pytest


@pytest.mark.parametrize("n", range(6))
def test_identity(n, request, worker_id, agent_id):
    seen = {
        "agent": agent_id,
        "worker_id": worker_id,
        "workerinput": getattr(request.config, "workerinput", {}).get("workerid"),
        "env": os.environ.get("PYTEST_XDIST_WORKER"),
        "count": os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
    }
    with open(os.environ["SEEN_LOG"], "a") as log:
        log.write(json.dumps(seen) + "\\n")
"""


def _seen(pytester: pytest.Pytester, *args: str) -> list[dict[str, str | None]]:
    log = pytester.path / "seen.jsonl"
    log.unlink(missing_ok=True)
    result = run(pytester, "-p", "no:cacheprovider", *args)
    assert summary_counts(result) == {"passed": 6}, result.stdout.str()
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_each_agent_is_an_xdist_worker_of_its_own(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    # pytest-xdist's own worker_id fixture reads the identity; the compat venv lacks xdist.
    pytest.importorskip("xdist")
    pytester.makepyfile(test_id=PROJECT)
    # Each agent waits for the other before its first test, so both run some.
    barrier = pytester.path.parent / f"{pytester.path.name}-barrier"
    pytester.makeconftest(
        BARRIER_SOURCE
        + "\nimport pytest\n\n@pytest.fixture(autouse=True)\n"
        + f"def _spread():\n    wait_for_agents({str(barrier)!r})\n"
    )
    monkeypatch.setenv("SEEN_LOG", str(pytester.path / "seen.jsonl"))
    plain = _seen(pytester)
    assert {(s["worker_id"], s["workerinput"], s["env"]) for s in plain} == {("master", None, None)}
    agents = _seen(pytester, "--agents", "2", "--agents-items", "1", "--agents-start", start)
    by_agent = {s["agent"]: (s["worker_id"], s["workerinput"], s["env"]) for s in agents}
    assert len(by_agent) == 2
    for worker_id, workerinput, env in by_agent.values():
        assert worker_id == workerinput == env
        assert worker_id is not None and worker_id.startswith("gw")
    assert len({ids[0] for ids in by_agent.values()}) == 2  # one worker id per agent
    assert {s["count"] for s in agents} == {"2"}

    off = _seen(pytester, "--agents", "2", "--agents-items", "1", "--agents-xdist-compat=off")
    assert {(s["worker_id"], s["workerinput"], s["env"]) for s in off} == {("master", None, None)}
