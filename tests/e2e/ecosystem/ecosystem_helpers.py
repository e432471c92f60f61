"""Run a small project with `.venv-ecosystem`'s pytest, plainly and on agents, and compare.

The ecosystem tests (issue 15 §3) run real third-party plugins, installed in a venv of their
own (`make ecosystem-venv`), in a subprocess: never in the project's own `.venv`, where
pytester runs would pick them up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import junit_cases
from helpers import write_files as write_files  # the ecosystem tests' project builder

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venv-ecosystem"
PYTHON = VENV / "bin" / "python"
# A developer without the ecosystem venv (or PostgreSQL) may skip these tests; CI never does.
SKIP_VARIABLE = "PYTEST_AGENTS_NO_ECOSYSTEM"
SKIP_POSTGRES_VARIABLE = "PYTEST_AGENTS_NO_POSTGRES"

# Small projects: small pools too, so that even four tests run on several agents.
_POOLS = ("--agents-items", "1", "--agents-min-items", "1")
MODES: dict[str, tuple[str, ...]] = {
    "plain": (),
    "fork2": ("--agents", "2", *_POOLS),
    "fork4": ("--agents", "4", *_POOLS),
    "spawn2": ("--agents", "2", "--agents-start", "spawn", *_POOLS),
    "spawn4": ("--agents", "4", "--agents-start", "spawn", *_POOLS),
}
# Four spawned agents cost some 8 s of interpreter starts on this 2-core machine: only the
# modules where spawning matters most (import-time state) run them.
AGENT_MODES = ("fork2", "fork4", "spawn2")
ALL_AGENT_MODES = (*AGENT_MODES, "spawn4")
# Plugins every project does without unless it is about them: pytest-randomly reshuffles and
# reseeds, hypothesis' terminal summary imports all of hypothesis (seconds on this machine).
QUIET = ("-p", "no:randomly", "-p", "no:hypothesispytest")

_ADDRESS = re.compile(r"0x[0-9a-f]{6,}")
_RULE = re.compile(r"^[=_-]{3,}( .* [=_-]{3,})?$")
_TIMING = re.compile(r"\s+in\s+[\d.]+s(\s+\([\d:]+\))?\s*=*\s*$")

# What the outer run (the project's own suite, itself on agents) must not pass on.
_OUTER_PREFIXES = (
    "PYTEST_AGENT",
    "PYTEST_XDIST",
    "COV_CORE_",
    "COVERAGE_",
    "HYPOTHESIS_",
)
_OUTER_NAMES = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_CURRENT_TEST",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTEST_DEBUG_TEMPROOT",
    "DJANGO_SETTINGS_MODULE",
    "PYTHONPATH",
    "COVERAGE_PROCESS_START",
)


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_OUTER_PREFIXES) and name not in _OUTER_NAMES
    }
    env.update(PYTHONDONTWRITEBYTECODE="1", COLUMNS="200", PY_COLORS="0", NO_COLOR="1")
    env.update(extra or {})
    return env


@dataclass
class Run:
    """One pytest run of a project: its exit status, output and artifacts."""

    mode: str
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    junit: Counter[tuple[str, str, str]]
    junit_path: Path
    metrics: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def summary(self) -> str:
        """The closing ``N passed, M failed`` line, without its timing and decoration."""
        for line in reversed(self.lines):
            if _TIMING.search(line) and " in " in line:
                return _TIMING.sub("", line).strip("= ").strip()
        return "<no summary line>"

    def describe(self) -> str:
        command = " ".join(("python -m pytest", *self.args))
        return (
            f"--- {self.mode} (exit {self.returncode}, {self.seconds:.1f} s): {command}\n"
            f"{self.stdout}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


def run_pytest(
    project: Path,
    mode: str,
    *args: str,
    quiet: Sequence[str] = QUIET,
    env: Mapping[str, str] | None = None,
    tag: str = "",
    timeout: float = 150,
    pytest_args: Sequence[str] | None = None,
) -> Run:
    """Run ``.venv-ecosystem/bin/python -m pytest`` in ``project`` in one of the MODES.

    ``pytest_args`` replaces the mode's arguments (pytest-xdist's ``-n``, say). The run writes
    its JUnit XML (and, on agents, the ``--agents-metrics`` file) beside the project.
    """
    reports = project.parent / f"{project.name}-reports"
    reports.mkdir(exist_ok=True)
    name = f"{mode}{tag}"
    junit_path = reports / f"{name}.xml"
    metrics_path = reports / f"{name}-metrics.json"
    for stale in (junit_path, metrics_path):
        stale.unlink(missing_ok=True)
    mode_args = MODES[mode] if pytest_args is None else tuple(pytest_args)
    full = (
        "-p",
        "no:cacheprovider",
        *quiet,
        "-rA",
        f"--junitxml={junit_path}",
        *mode_args,
        *args,
    )
    if pytest_args is None and mode != "plain":
        full = (*full, f"--agents-metrics={metrics_path}")
    started = time.monotonic()
    process = subprocess.Popen(
        [str(PYTHON), "-m", "pytest", *full],
        cwd=project,
        env=clean_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"{mode}: pytest ran past {timeout} s and was killed\n{stdout}\n{stderr}"
        ) from None
    finally:
        # Nothing of this run may outlive it (agents included).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    seconds = time.monotonic() - started
    junit = junit_cases(junit_path) if junit_path.exists() else Counter()
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    return Run(mode, full, process.returncode, stdout, stderr, seconds, junit, junit_path, metrics)


def junit_messages(path: Path) -> dict[str, str]:
    """Each failed or errored test case's message and text, keyed by ``classname.name``
    (object addresses masked)."""
    root = ET.parse(path).getroot()
    found = {}
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            element = case.find(tag)
            if element is not None:
                key = f"{case.get('classname')}.{case.get('name')}"
                text = (element.get("message") or "") + "\n" + (element.text or "")
                found[key] = _ADDRESS.sub("0x?", text)
    return found


def assert_parallel(run: Run) -> None:
    """The run really used several agents, and reported every test exactly once."""
    assert run.metrics is not None, "no --agents-metrics file\n" + run.describe()
    assert run.metrics["mode"] == "parallel", run.describe()
    assert len(run.metrics["agents"]) > 1, run.describe()
    assert run.metrics.get("lost", []) == [], run.metrics
    assert run.metrics.get("duplicates", []) == [], run.metrics


def assert_same_outcomes(plain: Run, other: Run, parallel: bool = True) -> None:
    """Exit status, summary line and per-test outcomes (JUnit XML) are those of the plain run."""
    context = plain.describe() + "\n" + other.describe()
    assert plain.junit, "the plain run wrote no test case\n" + context
    assert other.returncode == plain.returncode, context
    assert other.summary == plain.summary, context
    assert other.junit == plain.junit, context
    if parallel:
        assert_parallel(other)


def section(run: Run, title: str) -> list[str]:
    """The lines of the terminal section ``=== title ===`` (up to the next section)."""
    lines = run.lines
    starts = [i for i, line in enumerate(lines) if _RULE.match(line) and f" {title} " in line]
    if not starts:
        return []
    body = []
    for line in lines[starts[0] + 1 :]:
        if _RULE.match(line):
            break
        body.append(line)
    return body
