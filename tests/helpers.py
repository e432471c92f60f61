"""Shared helpers of the end-to-end tests: run a pytester project plainly and on agents."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

# Enough agents, and small enough pools, that even a four-test suite runs on several agents.
PARALLEL: tuple[str, ...] = ("--agents", "4", "--agents-items", "1", "--agents-min-items", "1")
# Plugins of the outer environment that must not reshuffle or slow down the inner runs
# (hypothesis' terminal summary alone costs seconds per session here).
QUIET_PLUGINS: tuple[str, ...] = ("-p", "no:randomly", "-p", "no:hypothesispytest")

_TIMING = re.compile(r"\s+in\s+[\d.]+s(\s+\([\d:]+\))?\s*=*\s*$")
_COUNT = re.compile(r"^(\d+) ([a-z][a-z ]*)$")
_SHORT_SUMMARY_WORDS = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS", "SUBFAILED")


def write_files(directory: Path, files: Mapping[str, str]) -> Path:
    """Write a project: {relative path: source}, dedented."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return directory


# A barrier the test projects use to make sure work really is spread over several agents:
# each agent announces itself, then waits (polling) until `need` agents have done so.
# Outside an agent (a plain run) it does nothing.
BARRIER_SOURCE = """
import os
import time
from pathlib import Path


def wait_for_agents(directory, need=2, timeout=15.0):
    agent = os.environ.get("PYTEST_AGENT_ID")
    if agent in (None, "controller") or directory is None:
        return
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / agent).touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < need and time.monotonic() < deadline:
        time.sleep(0.01)
"""


# A module test projects import (``from note import note``) to log which agent ran what:
# one "agent-id name" line per call in $RAN_LOG (see ``ran_log``).
NOTE_SOURCE = """
import os


def note(name):
    with open(os.environ["RAN_LOG"], "a") as log:
        log.write(f"{os.environ['PYTEST_AGENT_ID']} {name}\\n")
"""


def ran_log(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the ``note`` module in the project and $RAN_LOG in the environment; the log."""
    log = pytester.path / "ran.log"
    monkeypatch.setenv("RAN_LOG", str(log))
    pytester.makepyfile(note=NOTE_SOURCE)
    return log


def read_ran_log(log: Path) -> list[tuple[str, str]]:
    """(agent id, name) per ``note`` call, in the order they were written."""
    lines = log.read_text().splitlines()
    return [(agent, name) for agent, name in (line.split() for line in lines)]


def summary_line(result: pytest.RunResult) -> str:
    """The final ``N passed, M failed`` line of a run, without the timing and decoration."""
    for line in reversed(result.outlines):
        if _TIMING.search(line) and (" in " in line):
            return _TIMING.sub("", line).strip("= ").strip()
    raise AssertionError("no summary line in the output:\n" + result.stdout.str())


def summary_counts(result: pytest.RunResult) -> dict[str, int]:
    """Every ``N noun`` of the summary line, multi-word nouns (``subtests passed``) included.

    Singular nouns are made plural like pytester's parseoutcomes does (``1 error`` → errors).
    """
    text = summary_line(result)
    counts: dict[str, int] = {}
    if text.startswith("no tests ran"):
        text = text[len("no tests ran") :].strip(", ")
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _COUNT.match(part)
        assert match, f"unexpected summary part {part!r} in {text!r}"
        noun = match.group(2)
        noun = {"warning": "warnings", "error": "errors"}.get(noun, noun)
        counts[noun] = int(match.group(1))
    return counts


def junit_cases(path: Path) -> Counter[tuple[str, str, str]]:
    """The test cases of a JUnit XML file as a multiset of (classname, name, outcome)."""
    root = ET.parse(path).getroot()
    cases: Counter[tuple[str, str, str]] = Counter()
    for case in root.iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
                break
        cases[(case.get("classname", ""), case.get("name", ""), outcome)] += 1
    return cases


def junit_properties(path: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """The ``<property>`` elements of every test case, keyed by (classname, name)."""
    root = ET.parse(path).getroot()
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for case in root.iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        found[key] = [
            (prop.get("name", ""), prop.get("value", "")) for prop in case.iter("property")
        ]
    return found


def short_summary(result: pytest.RunResult) -> list[str]:
    """The lines of the "short test summary info" section (``-r``), in their order."""
    lines = result.outlines
    try:
        start = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    except StopIteration:
        return []
    return [line for line in lines[start + 1 :] if line.startswith(_SHORT_SUMMARY_WORDS)]


def read_metrics(path: Path) -> dict[str, Any]:
    """The ``--agents-metrics`` document."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def assert_parallel(result: pytest.RunResult, metrics: dict[str, Any] | None = None) -> None:
    """The run really used several agent processes.

    With metrics: their mode and agents; without: the terminal's plan line (which -q hides).
    """
    text = result.stdout.str()
    assert "parallel agents: running in-process" not in text, text
    if metrics is None:
        assert any(line.startswith("parallel agents:") for line in result.outlines), text
    else:
        assert metrics["mode"] == "parallel", metrics
        assert len(metrics["agents"]) > 1, metrics


def run(
    pytester: pytest.Pytester, *args: str, subprocess: bool = False, **kwargs: Any
) -> pytest.RunResult:
    """Run pytest in the project, without the outer run's reshuffling plugins."""
    full = (*QUIET_PLUGINS, *args)
    if subprocess:
        return pytester.runpytest_subprocess(*full, **kwargs)
    return pytester.runpytest(*full, **kwargs)


def compare(
    pytester: pytest.Pytester,
    *args: str,
    agents_args: Sequence[str] = PARALLEL,
    expect_parallel: bool = True,
    subprocess: bool = False,
) -> tuple[pytest.RunResult, pytest.RunResult]:
    """Run the project plainly, then on agents; assert they agree; return both results.

    Agreement: the exit code, every count of the summary line (deselected, warnings,
    errors, xfailed, xpassed, subtests ... included) and the JUnit test cases as a multiset.
    """
    reports = pytester.path.parent / f"{pytester.path.name}-reports"
    reports.mkdir(exist_ok=True)
    number = len(list(reports.glob("plain-*.xml")))
    plain_xml = reports / f"plain-{number}.xml"
    parallel_xml = reports / f"parallel-{number}.xml"
    metrics_path = reports / f"metrics-{number}.json"
    plain = run(pytester, *args, f"--junitxml={plain_xml}", subprocess=subprocess)
    parallel = run(
        pytester,
        *args,
        *agents_args,
        f"--junitxml={parallel_xml}",
        f"--agents-metrics={metrics_path}",
        subprocess=subprocess,
    )
    context = (
        "\n--- plain ---\n" + plain.stdout.str() + "\n--- parallel ---\n" + parallel.stdout.str()
    )
    assert parallel.ret == plain.ret, context
    assert summary_counts(parallel) == summary_counts(plain), context
    assert parallel.parseoutcomes() == plain.parseoutcomes(), context
    if plain_xml.exists() or parallel_xml.exists():
        assert junit_cases(parallel_xml) == junit_cases(plain_xml), context
    if expect_parallel:
        metrics = read_metrics(metrics_path)
        assert_parallel(parallel, metrics)
        # The plugin's own ledger: every test reported exactly once.
        assert metrics["lost"] == [] and metrics["duplicates"] == [], metrics
    parallel.junit_path = parallel_xml  # type: ignore[attr-defined]
    plain.junit_path = plain_xml  # type: ignore[attr-defined]
    parallel.metrics_path = metrics_path  # type: ignore[attr-defined]
    return plain, parallel


def pid_is_agent(pid: int) -> bool:
    """Whether ``pid`` is (still) a live python process, i.e. possibly our agent."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if re.search(r"^State:\s+Z", status, re.MULTILINE):
        return False  # a zombie runs nothing; its parent just did not reap it yet
    return b"python" in cmdline


def processes_in(directory: Path) -> list[int]:
    """Live processes (ours excluded) whose working directory is ``directory``."""
    found = []
    target = directory.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if cwd == target and pid_is_agent(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_until_gone(pids: Iterable[int], timeout: float = 2.5) -> list[int]:
    """Poll until none of ``pids`` is a live python process; return those still alive."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        remaining = [pid for pid in remaining if pid_is_agent(pid)]
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.05)


def read_records(directory: Path) -> list[dict[str, Any]]:
    """JSON records written by test projects, one file each, in no particular order."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]


# A recorder the test projects use: each process appends JSON lines, in the order things
# happen there, to its own file under `folder` (one file per agent, or "controller").
RECORDER_SOURCE = """
import json
import os
import time
from pathlib import Path

RECORDS = Path({folder!r})


def record(kind, **data):
    agent = os.environ.get("PYTEST_AGENT_ID", "controller")
    RECORDS.mkdir(parents=True, exist_ok=True)
    entry = dict(kind=kind, agent=agent, pid=os.getpid(), time=time.time(), **data)
    with open(RECORDS / f"{{agent}}-{{os.getpid()}}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\\n")
"""


def recorder_source(folder: Path) -> str:
    """The recorder's source, writing under ``folder``."""
    return RECORDER_SOURCE.format(folder=str(folder))


def read_logs(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The recorder's entries per process file (``unit-0-1234``), in the order written."""
    logs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        logs[path.stem] = [json.loads(line) for line in lines if line.strip()]
    return logs


@contextlib.contextmanager
def interruptible_children() -> Iterator[None]:
    """Children started inside do not inherit an ignored SIGINT.

    A shell's background job (``cmd &``, ``nohup``) runs with SIGINT ignored, which its
    children inherit through exec, and Python then installs no KeyboardInterrupt handler:
    a test that sends SIGINT to a run it started would test nothing. A handler (unlike
    SIG_IGN) is reset to the default by exec, so installing one around the start is enough.
    """
    ignored = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    )
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class Terminal:
    """A tmux pane on a private server socket: a real terminal for one command."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.runs = 0
        self.socket = name

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        return done.stdout

    def run(self, command: list[str], env: dict[str, str]) -> None:
        # A server of its own per command: a killed server's socket may linger a moment.
        self.close()
        self.runs += 1
        self.socket = f"{self.name}-{self.runs}"
        script = self.directory / f"{self.socket}.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        script.write_text(
            # The shell outlives the Ctrl-C (a trap, not an ignored signal, which its
            # children would inherit) to print the exit status.
            f"trap : INT\ncd {shlex.quote(str(self.directory))}\n{exports}"
            f"{shlex.join(command)}\necho EXIT=$?\nsleep 600\n"
        )
        self.tmux("new-session", "-d", "-x", "160", "-y", "50", "sh", str(script))
        assert self.tmux("list-panes", "-F", "#{pane_pid}").strip(), "tmux did not start"

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-S", "-200")

    def pid(self) -> int:
        return int(self.tmux("list-panes", "-F", "#{pane_pid}").split()[0])

    def close(self) -> None:
        if self.runs:
            self.tmux("kill-server")
