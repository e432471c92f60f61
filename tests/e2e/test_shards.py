"""CI shards end to end: disjoint, complete, balanced, order-free; CI variables; merge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import QUIET_PLUGINS, junit_cases

FILES = 6
PER_FILE = 10


def _project(pytester: pytest.Pytester) -> dict[str, float]:
    """Sixty tests with recorded, uneven durations (they do not sleep: only the split matters)."""
    durations: dict[str, float] = {}
    for f in range(FILES):
        lines = []
        for i in range(PER_FILE):
            lines.append(f"def test_{i}():\n    assert {i} < 100\n")
            durations[f"test_f{f}.py::test_{i}"] = ((f * PER_FILE + i) * 37 % 11) / 4 + 0.25
        pytester.makepyfile(**{f"test_f{f}": "\n".join(lines)})
    (pytester.path / ".test_durations").write_text(json.dumps(durations))
    return durations


def _ran(result: pytest.RunResult) -> set[str]:
    return {
        line.split()[0]
        for line in result.outlines
        if line.endswith(" PASSED") or " PASSED " in line
    }


def _shard_run(pytester: pytest.Pytester, k: int, n: int, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-v", *QUIET_PLUGINS, f"--agents-shard={k}/{n}", *args)


def test_three_shards_are_disjoint_complete_and_balanced(pytester: pytest.Pytester) -> None:
    durations = _project(pytester)
    shards = []
    for k in (1, 2, 3):
        result = _shard_run(pytester, k, 3)
        assert result.ret == 0
        shards.append(_ran(result))
    assert sum(len(s) for s in shards) == len(durations)
    assert set().union(*shards) == set(durations)
    loads = [sum(durations[n] for n in shard) for shard in shards]
    assert max(loads) <= min(loads) * 1.05, loads


def test_split_does_not_depend_on_argument_order(pytester: pytest.Pytester) -> None:
    _project(pytester)
    files = [f"test_f{f}.py" for f in range(FILES)]
    forward = _ran(_shard_run(pytester, 2, 3, *files))
    backward = _ran(_shard_run(pytester, 2, 3, *reversed(files)))
    assert forward == backward
    assert forward


def test_split_follows_selection(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = _shard_run(pytester, 1, 2, "-k", "test_f0 or test_f1")
    ran = _ran(result)
    assert ran and all(n.startswith(("test_f0.py", "test_f1.py")) for n in ran)
    result.stdout.fnmatch_lines(["*shard 1/2 from --agents-shard: * tests*"])


def test_empty_shard_exits_zero_with_a_notice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_only():\n    pass\n")
    result = pytester.runpytest(*QUIET_PLUGINS, "--agents-shard=2/2")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*shard 2/2*empty, nothing to run*"])


@pytest.mark.parametrize(
    ("env", "expected_shard"),
    [
        ({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}, 2),
        ({"CIRCLE_NODE_INDEX": "1", "CIRCLE_NODE_TOTAL": "3"}, 2),
        ({"BUILDKITE_PARALLEL_JOB": "1", "BUILDKITE_PARALLEL_JOB_COUNT": "3"}, 2),
    ],
)
def test_auto_reads_ci_variables(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    expected_shard: int,
) -> None:
    _project(pytester)
    explicit = _ran(_shard_run(pytester, expected_shard, 3))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest("-v", *QUIET_PLUGINS, "--agents-shard=auto")
    assert _ran(result) == explicit


def test_auto_without_ci_runs_everything(pytester: pytest.Pytester) -> None:
    durations = _project(pytester)
    result = pytester.runpytest("-v", *QUIET_PLUGINS, "--agents-shard=auto")
    assert _ran(result) == set(durations)


def test_bazel_is_obeyed_without_the_flag(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(pytester)
    status = pytester.path / "shard-status"
    monkeypatch.setenv("TEST_SHARD_INDEX", "0")
    monkeypatch.setenv("TEST_TOTAL_SHARDS", "3")
    monkeypatch.setenv("TEST_SHARD_STATUS_FILE", str(status))
    bazel = _ran(pytester.runpytest("-v", *QUIET_PLUGINS))
    monkeypatch.delenv("TEST_SHARD_INDEX")
    monkeypatch.delenv("TEST_TOTAL_SHARDS")
    assert bazel == _ran(_shard_run(pytester, 1, 3))
    assert status.exists()


@pytest.mark.parametrize("value", ["0/3", "4/3", "1/0", "x", "2/"])
def test_bad_shard_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    _project(pytester)
    result = pytester.runpytest(*QUIET_PLUGINS, f"--agents-shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: *--agents-shard*"])


def test_shards_with_local_agents_and_plan(pytester: pytest.Pytester) -> None:
    _project(pytester)
    plan = pytester.runpytest(*QUIET_PLUGINS, "--agents-shard=1/3", "--agents=2", "--agents-plan")
    assert plan.ret == 0
    plan.stdout.fnmatch_lines(["*unit*20*", "*shard 1/3*20 tests*predicted seconds per shard*"])
    run = _shard_run(pytester, 1, 3, "--agents=2", "--agents-items=1")
    assert run.ret == 0
    assert len(_ran(run)) == 20


def test_merge_of_three_shards_equals_a_full_run(pytester: pytest.Pytester) -> None:
    """Shards write JUnit, durations and metrics; merge turns them into one of each."""
    durations = _project(pytester)
    (pytester.path / ".test_durations").unlink()
    full = pytester.runpytest(*QUIET_PLUGINS, "--junitxml=full.xml")
    assert full.ret == 0
    for k in (1, 2, 3):
        out = pytester.path / f"shard{k}"
        out.mkdir()
        result = pytester.runpytest(
            *QUIET_PLUGINS,
            f"--agents-shard={k}/3",
            "--agents=2",
            f"--junitxml={out}/junit.xml",
            f"--agents-metrics={out}/metrics.json",
            "--agents-store-durations",
            f"--agents-durations={out}/.test_durations",
        )
        assert result.ret == 0
    merged = pytester.path / "merged"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_parallel_agents",
            "merge",
            "shard1",
            "shard2",
            "shard3",
            "--out",
            str(merged),
        ],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert junit_cases(merged / "junit.xml") == junit_cases(pytester.path / "full.xml")
    assert set(json.loads((merged / ".test_durations").read_text())) == set(durations)
    metrics = json.loads((merged / "metrics.json").read_text())
    assert metrics["totals"]["passed"] == len(durations)
    assert sorted(s["shard"]["index"] for s in metrics["shards"]) == [1, 2, 3]


def test_plan_shows_every_shard(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest(*QUIET_PLUGINS, "--agents-shard=3/3", "--agents-plan")
    assert result.ret == 0
    line = next(x for x in result.outlines if x.startswith("shard 3/3"))
    loads = [float(x) for x in line.rsplit(":", 1)[1].split(",")]
    assert len(loads) == 3
    assert Path(pytester.path, ".test_durations").exists()
