"""Run real projects' test suites plainly and under pytest-parallel-agents; compare every test.

    python realworld/run.py [--only NAME,...] [--quick] [--variants plain,agents2,...]
                            [--cache DIR] [--write-docs] [--list]

For each project of the corpus (``realworld/corpus.py``; all by default, ``--quick`` for the CI
subset, ``--only`` to choose): download its pinned sdist from PyPI and extract it under the
cache directory (``.realworld/`` at the repository root, reused while present), create a venv
for it there with its pinned test dependencies, this checkout (editable) and pytest-xdist, then
run its suite in the extracted directory, each run with ``--junitxml``, ``-p no:cacheprovider``
and ``-q``:

    plain       the plugin installed, ``--agents`` not given
    agents2     ``--agents 2``
    agents4     ``--agents 4``
    spawn2      ``--agents 2 --agents-start spawn``
    xdist2      ``-n 2`` (for the wall time only)
    plain2      plain again (only when asked for with --variants: tells a flaky suite)

Every compared run's per-test outcomes (from its JUnit XML: passed, failed, error, skipped,
xfailed per test case, keyed by classname and name, duplicates counted) and its final summary
line (without its time) and exit status are compared with the plain run's. Prints one table,
writes every difference (test, plain outcome, the other run's, the message head) to
``CACHE/differences.log`` and each run's output and XML under ``CACHE/runs/NAME/``, and with
``--write-docs`` rewrites the table in ``docs/fidelity.md``. Exits 1 when any run differs from
the plain one, 2 when a project could not be prepared, 130 when interrupted.

Each subprocess runs in a session of its own under a timeout; on a timeout, Ctrl-C or SIGTERM its
whole process tree is killed, and processes a run leaves behind are killed and reported.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from corpus import COMMON_DEPS, PROJECTS, Project  # noqa: E402

DEFAULT_CACHE = REPO / ".realworld"
DOCS = REPO / "docs" / "fidelity.md"
TABLE_START = "<!-- realworld-table:start -->"
TABLE_END = "<!-- realworld-table:end -->"
INSTALL_TIMEOUT = 1200
KILL_GRACE = 5.0
MESSAGE_HEAD = 300

# name -> the options it adds to a plain run
VARIANTS: dict[str, tuple[str, ...]] = {
    "plain": (),
    "agents2": ("--agents", "2"),
    "agents4": ("--agents", "4"),
    "spawn2": ("--agents", "2", "--agents-start", "spawn"),
    "xdist2": ("-n", "2"),
    "plain2": (),
}
DEFAULT_VARIANTS = ("plain", "agents2", "agents4", "spawn2", "xdist2")
# Runs compared with the plain one test by test (xdist's only for its wall time; its
# differences, if any, are logged as context: a suite that is not parallel-safe shows there too).
COMPARED = ("agents2", "agents4", "spawn2", "plain2")
LOGGED_ONLY = ("xdist2",)
LABELS = {
    "plain": "plain",
    "agents2": "agents 2",
    "agents4": "agents 4",
    "spawn2": "spawn 2",
    "xdist2": "xdist -n 2",
    "plain2": "plain again",
}
COMMON_ARGS = ("-q", "-p", "no:cacheprovider")
# Environment variables that would change what a pytest run does, or tell it it is an agent.
SCRUB_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_AUTO_NUM_WORKERS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "VIRTUAL_ENV",
    "COV_CORE_SOURCE",
    "COV_CORE_CONFIG",
    "COV_CORE_DATAFILE",
    "COVERAGE_PROCESS_START",
)
SUMMARY = re.compile(
    r"^=*\s*(?P<body>.*?)\s+in\s+\d+(?:\.\d+)?s(?:\s+\(\d+:\d\d:\d\d\))?\s*=*$",
)
SUMMARY_WORDS = re.compile(
    r"\b(passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?|no tests ran)\b"
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ----------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class Case:
    """One <testcase> of a JUnit XML report."""

    key: str  # classname::name
    outcome: str  # passed, failed, error, skipped, xfailed, or several joined by '+'
    message: str  # the head of the first failure/error/skipped message


@dataclass(frozen=True)
class Difference:
    key: str
    plain: str  # the plain run's outcomes of this key ('missing' when it has none)
    other: str
    message: str


def head(text: str, limit: int = MESSAGE_HEAD) -> str:
    """The first non-empty line of ``text``, at most ``limit`` characters."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def parse_junit_text(text: str) -> list[Case]:
    """The test cases of a JUnit XML report, in document order."""
    root = ET.fromstring(text)
    cases: list[Case] = []
    for case in root.iter("testcase"):
        kinds: list[str] = []
        message = ""
        for child in case:
            if child.tag == "failure":
                kind = "failed"
            elif child.tag == "error":
                kind = "error"
            elif child.tag == "skipped":
                kind = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
            else:
                continue
            kinds.append(kind)
            if not message:
                message = head(child.get("message") or child.text or "")
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        cases.append(Case(key, "+".join(kinds) or "passed", message))
    return cases


def parse_junit(path: Path) -> list[Case] | None:
    """The cases of the report at ``path``; None when it is missing or unreadable."""
    try:
        return parse_junit_text(path.read_text(encoding="utf-8"))
    except (OSError, ET.ParseError):
        return None


def normalize(cases: Sequence[Case], rules: Sequence[tuple[str, str]]) -> list[Case]:
    """``cases`` with each (regex, replacement) rule applied to their keys."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out = []
    for case in cases:
        key = case.key
        for pattern, replacement in compiled:
            key = pattern.sub(replacement, key)
        out.append(Case(key, case.outcome, case.message))
    return out


def summary_line(output: str) -> str | None:
    """pytest's final summary line in ``output`` without its time ('3 passed, 1 skipped')."""
    for raw in reversed(output.splitlines()):
        line = ANSI.sub("", raw).strip()
        match = SUMMARY.match(line)
        if match and SUMMARY_WORDS.search(match["body"]):
            return match["body"].strip()
    return None


def _outcomes(cases: Iterable[Case]) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = {}
    for case in cases:
        table.setdefault(case.key, Counter())[case.outcome] += 1
    return table


def _describe(counts: Counter[str] | None) -> str:
    if not counts:
        return "missing"
    return ", ".join(
        outcome if n == 1 else f"{outcome} x{n}" for outcome, n in sorted(counts.items())
    )


def compare(plain: Sequence[Case], other: Sequence[Case]) -> list[Difference]:
    """Keys whose outcomes (a multiset: duplicates count) differ between the two runs."""
    left, right = _outcomes(plain), _outcomes(other)
    messages: dict[str, str] = {}
    for case in (*other, *plain):  # the other run's message first: it is usually the news
        if case.message and case.key not in messages:
            messages[case.key] = case.message
    differences = []
    for key in sorted(left.keys() | right.keys()):
        if left.get(key) != right.get(key):
            differences.append(
                Difference(
                    key, _describe(left.get(key)), _describe(right.get(key)), messages.get(key, "")
                )
            )
    return differences


# ----------------------------------------------------------------------------- processes


class Interrupted(Exception):
    """SIGTERM arrived (Ctrl-C arrives as KeyboardInterrupt)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def _become_subreaper() -> None:
    """Have orphaned descendants reparented to this process, so that leftovers can be found."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, state) of every process (Linux /proc; else empty)."""
    table: dict[int, tuple[int, int, str]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return table
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 4:
            table[int(entry.name)] = (int(fields[1]), int(fields[3]), fields[0])
    return table


def _tree(root: int, session: int) -> set[int]:
    """Live processes below ``root``, in its session, or orphaned to this process."""
    table = _processes()
    me = os.getpid()
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        for child, (parent, _, state) in table.items():
            if parent == pid and child not in found and state != "Z":
                found.add(child)
                todo.append(child)
    for pid, (parent, sid, state) in table.items():
        if state != "Z" and pid != me and (sid == session or (parent == me and pid != root)):
            found.add(pid)
    found.discard(me)
    return found


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap() -> None:
    """Collect the exit status of orphans reparented to this process."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_tree(root: int, proc: subprocess.Popen[bytes] | None) -> int:
    """SIGTERM, then after a grace period SIGKILL, everything of ``root``'s; how many there were."""
    pids = _tree(root, root)
    if proc is not None and proc.poll() is None:
        pids.add(root)
    if not pids:
        return 0
    _signal_all(pids, signal.SIGTERM)

    def alive() -> set[int]:
        own = {root} if proc is not None and proc.poll() is None else set()
        return _tree(root, root) | own

    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline:
        _reap()
        if not alive():
            break
        time.sleep(0.1)
    rest = alive()
    _signal_all(rest, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_GRACE)
    time.sleep(0.1)
    _reap()
    return len(pids)


@dataclass
class Outcome:
    rc: int
    wall: float
    timed_out: bool
    leftovers: int  # processes still alive after the command itself ended (then killed)
    output: str


def run_command(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float, log: Path
) -> Outcome:
    """Run ``argv`` in a session of its own, output to ``log``; kill its tree when it is done."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        sink.write(f"$ cd {shlex.quote(str(cwd))} && {shlex.join(argv)}\n".encode())
        sink.flush()
        start = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_tree(proc.pid, proc)
        except BaseException:
            _kill_tree(proc.pid, proc)
            raise
        wall = time.monotonic() - start
        leftovers = 0 if timed_out else _kill_tree(proc.pid, None)
    output = log.read_text(encoding="utf-8", errors="replace")
    rc = proc.returncode if proc.returncode is not None else -9
    return Outcome(rc, wall, timed_out, leftovers, output)


# ----------------------------------------------------------------------------- preparation


class PrepareError(Exception):
    pass


@dataclass(frozen=True)
class Prepared:
    project: Project
    source: Path  # the extracted sdist: where its suite runs
    python: Path  # the venv's interpreter


def _slug(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _install_spec(project: Project) -> str:
    return json.dumps(
        {
            "python": sys.version,
            "project": [project.name, project.version, project.install],
            "deps": list(project.deps),
            "common": list(COMMON_DEPS),
        },
        sort_keys=True,
    )


def _plugin_spec(plugin: Path) -> str:
    pyproject = (plugin / "pyproject.toml").read_bytes()
    return json.dumps([str(plugin), hashlib.sha256(pyproject).hexdigest()])


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def plugin_source(ref: str | None, cache: Path) -> tuple[Path, str]:
    """The plugin tree to install and a line that names it.

    Without ``ref``, this checkout as it is (editable, uncommitted changes included); with one,
    that commit exported under the cache (so a tree being edited meanwhile changes nothing).
    """
    if ref is None:
        try:
            head_sha = _git("rev-parse", "--short=12", "HEAD")
            dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        except (OSError, SystemExit):
            return REPO, f"this checkout ({REPO})"
        state = ", with uncommitted changes" if dirty else ""
        return REPO, f"this checkout at {head_sha}{state}"
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    tree = cache / "plugin" / sha[:12]
    if not (tree / "pyproject.toml").exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        archive = tree.parent / f"{sha[:12]}.tar"
        _git("archive", "--format=tar", "-o", str(archive), sha)
        with tempfile.TemporaryDirectory(dir=tree.parent, prefix=".export-") as tmp:
            exported = Path(tmp) / "tree"
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(exported, filter="data")
                else:
                    tar.extractall(exported)
            if tree.exists():
                shutil.rmtree(tree)
            exported.rename(tree)
        archive.unlink()
    return tree, f"commit {sha[:12]} ({ref}), exported to {tree}"


def _checked(outcome: Outcome, what: str, log: Path) -> None:
    if outcome.timed_out or outcome.rc != 0:
        status = "timed out" if outcome.timed_out else f"exit status {outcome.rc}"
        tail = "\n".join(outcome.output.splitlines()[-15:])
        raise PrepareError(f"{what}: {status} (log: {log})\n{tail}")


def _extract(archive: Path, into: Path) -> Path:
    """Extract ``archive`` under ``into`` (atomically); the top directory it holds."""
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into, prefix=".extract-") as tmp:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python 3.10 before 3.10.12: no extraction filters
                tar.extractall(tmp)  # a pinned sdist from PyPI
        tops = [p for p in Path(tmp).iterdir() if p.is_dir()]
        if len(tops) != 1:
            raise PrepareError(f"{archive.name}: expected one top directory, found {len(tops)}")
        target = into / tops[0].name
        if target.exists():
            shutil.rmtree(target)
        tops[0].rename(target)
    return target


def prepare(project: Project, cache: Path, env: dict[str, str], plugin: Path) -> Prepared:
    """The project's extracted sdist and venv, made when missing or out of date."""
    slug = _slug(project.name)
    logs = cache / "runs" / slug
    venv = cache / "venvs" / slug
    python = _venv_python(venv)
    stamp = venv / "realworld-installed.json"
    spec = _install_spec(project)
    fresh = not (stamp.exists() and stamp.read_text() == spec)
    if fresh:
        if venv.exists():
            shutil.rmtree(venv)
        log = logs / "venv.log"
        made = run_command(
            [sys.executable, "-m", "venv", str(venv)],
            cwd=cache,
            env=env,
            timeout=INSTALL_TIMEOUT,
            log=log,
        )
        _checked(made, f"{project.name}: venv", log)

    downloads = cache / "sdists" / f"{slug}-{project.version}"
    archives = sorted(downloads.glob("*.tar.gz")) if downloads.is_dir() else []
    if not archives:
        log = logs / "download.log"
        got = run_command(
            [
                str(python),
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                project.name,
                f"{project.name}=={project.version}",
                "--dest",
                str(downloads),
            ],
            cwd=cache,
            env=env,
            timeout=INSTALL_TIMEOUT,
            log=log,
        )
        _checked(got, f"{project.name}: pip download", log)
        archives = sorted(downloads.glob("*.tar.gz"))
        if len(archives) != 1:
            raise PrepareError(f"{project.name}: no sdist (.tar.gz) in {downloads}")
    archive = archives[0]

    marker = cache / "src" / f".{archive.name}.extracted"
    source = cache / "src" / (marker.read_text().strip() if marker.exists() else "")
    if not marker.exists() or not source.is_dir() or source == cache / "src":
        source = _extract(archive, cache / "src")
        marker.write_text(source.name + "\n")

    plugin_stamp = venv / "realworld-plugin.json"
    if fresh:
        log = logs / "install.log"
        wanted = ["-e", str(plugin), *COMMON_DEPS, *project.deps]
        if project.install:
            wanted.append(str(archive))
        installed = run_command(
            [str(python), "-m", "pip", "install", "--quiet", *wanted],
            cwd=cache,
            env=env,
            timeout=INSTALL_TIMEOUT,
            log=log,
        )
        _checked(installed, f"{project.name}: pip install", log)
        frozen = run_command(
            [str(python), "-m", "pip", "freeze", "--all"],
            cwd=cache,
            env=env,
            timeout=INSTALL_TIMEOUT,
            log=venv / "freeze.txt",
        )
        _checked(frozen, f"{project.name}: pip freeze", venv / "freeze.txt")
        stamp.write_text(spec)
        plugin_stamp.write_text(_plugin_spec(plugin))
    elif not plugin_stamp.exists() or plugin_stamp.read_text() != _plugin_spec(plugin):
        log = logs / "install-plugin.log"
        installed = run_command(
            [str(python), "-m", "pip", "install", "--quiet", "-e", str(plugin), *COMMON_DEPS],
            cwd=cache,
            env=env,
            timeout=INSTALL_TIMEOUT,
            log=log,
        )
        _checked(installed, f"{project.name}: pip install the plugin", log)
        plugin_stamp.write_text(_plugin_spec(plugin))
    return Prepared(project, source, python)


# ----------------------------------------------------------------------------- running


@dataclass
class Run:
    variant: str
    outcome: Outcome
    cases: list[Case] | None
    summary: str | None
    command: str


@dataclass
class Result:
    project: Project
    runs: dict[str, Run] = field(default_factory=dict)
    error: str = ""

    def differences(self, variant: str) -> list[Difference]:
        plain, other = self.runs.get("plain"), self.runs.get(variant)
        if plain is None or other is None:
            return []
        return compare(plain.cases or [], other.cases or [])

    def summary_equal(self, variant: str) -> bool:
        plain, other = self.runs["plain"], self.runs[variant]
        return (
            plain.summary is not None
            and plain.summary == other.summary
            and plain.outcome.rc == other.outcome.rc
            and not other.outcome.timed_out
        )

    def differs(self, variant: str) -> bool:
        if variant not in self.runs or "plain" not in self.runs:
            return False
        other = self.runs[variant]
        return (
            bool(self.differences(variant))
            or not self.summary_equal(variant)
            or other.cases is None
            or other.outcome.leftovers > self.runs["plain"].outcome.leftovers
        )


def has_pytest_config(source: Path) -> bool:
    """Whether pytest finds a configuration file of the suite's own in ``source``."""
    if (source / "pytest.ini").is_file() or (source / ".pytest.ini").is_file():
        return True
    sections = {
        "pyproject.toml": re.compile(r"^\[tool\.pytest(\.ini_options)?\]", re.M),
        "tox.ini": re.compile(r"^\[pytest\]", re.M),
        "setup.cfg": re.compile(r"^\[tool:pytest\]", re.M),
    }
    for name, section in sections.items():
        path = source / name
        if path.is_file() and section.search(path.read_text(encoding="utf-8", errors="replace")):
            return True
    return False


def config_args(source: Path, cache: Path) -> list[str]:
    """Options that keep pytest from taking this repository's configuration for the suite's.

    The cache lies inside this checkout: pytest, finding no configuration in a suite's directory,
    would go on up to this repository's pyproject.toml. A suite without one of its own runs
    with an empty one instead, rooted in its directory, as it would on its own.
    """
    if has_pytest_config(source):
        return []
    empty = cache / "no-config" / "pytest.ini"
    if not empty.exists():
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.write_text("[pytest]\n", encoding="utf-8")
    return ["-c", str(empty), f"--rootdir={source}"]


def pytest_argv(
    project: Project, variant: str, junit: Path, config: Sequence[str] = ()
) -> list[str]:
    deselect = [arg for nodeid, _ in project.deselect for arg in ("--deselect", nodeid)]
    return [
        *COMMON_ARGS,
        *config,
        f"--junitxml={junit}",
        *VARIANTS[variant],
        *project.args,
        *deselect,
    ]


def run_env(base: dict[str, str], prepared: Prepared) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in SCRUB_ENV and not k.startswith("PYTEST_AGENT")}
    bindir = str(prepared.python.parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PY_COLORS"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(dict(prepared.project.env))
    return env


def run_project(
    prepared: Prepared, variants: Sequence[str], cache: Path, env: dict[str, str]
) -> Result:
    project = prepared.project
    result = Result(project)
    logs = cache / "runs" / _slug(project.name)
    for variant in variants:
        junit = logs / f"{variant}.xml"
        junit.unlink(missing_ok=True)
        # Hypothesis keeps failing examples in the suite's directory: no run may inherit them.
        shutil.rmtree(prepared.source / ".hypothesis", ignore_errors=True)
        config = config_args(prepared.source, cache)
        argv = [
            str(prepared.python),
            "-m",
            "pytest",
            *pytest_argv(project, variant, junit, config),
        ]
        outcome = run_command(
            argv,
            cwd=prepared.source,
            env=run_env(env, prepared),
            timeout=project.timeout,
            log=logs / f"{variant}.out",
        )
        cases = parse_junit(junit)
        run = Run(
            variant,
            outcome,
            None if cases is None else normalize(cases, project.normalize_ids),
            summary_line(outcome.output),
            f"cd {shlex.quote(str(prepared.source))} && {shlex.join(argv)}",
        )
        result.runs[variant] = run
        status = "TIMEOUT" if outcome.timed_out else f"rc={outcome.rc}"
        extra = f", {outcome.leftovers} leftover processes killed" if outcome.leftovers else ""
        diff = ""
        if variant != "plain" and "plain" in result.runs:
            diff = f", {len(result.differences(variant))} per-test differences"
        print(
            f"  {project.name:<16} {LABELS[variant]:<12} {outcome.wall:7.1f} s  {status}  "
            f"{run.summary or '(no summary line)'}{diff}{extra}",
            file=sys.stderr,
            flush=True,
        )
    return result


# ----------------------------------------------------------------------------- reporting


def _yn(result: Result, variant: str) -> str:
    if variant not in result.runs:
        return "-"
    return "y" if result.summary_equal(variant) else "n"


def _wall(result: Result, variant: str) -> str:
    run = result.runs.get(variant)
    if run is None:
        return "-"
    return f"{run.outcome.wall:.1f}" + ("!" if run.outcome.timed_out else "")


def table(results: Sequence[Result], variants: Sequence[str]) -> str:
    compared = [v for v in COMPARED if v in variants]
    walls = [v for v in VARIANTS if v in variants]
    labels = " / ".join(LABELS[v] for v in compared)
    header = [
        "suite",
        "tests",
        f"per-test differences ({labels})",
        f"summary equal ({labels})",
        "wall s (" + " / ".join(LABELS[v] for v in walls) + ")",
    ]
    rows = [header, ["---", "---:", ":---:", ":---:", "---:"]]
    for result in results:
        name = f"{result.project.name} {result.project.version}"
        if result.error or "plain" not in result.runs:
            rows.append([name, "-", "not run", "-", "-"])
            continue
        plain = result.runs["plain"]
        tests = str(len(plain.cases)) if plain.cases is not None else "?"
        diffs = " / ".join(
            str(len(result.differences(v))) if v in result.runs else "-" for v in compared
        )
        equal = " / ".join(_yn(result, v) for v in compared)
        wall = " / ".join(_wall(result, v) for v in walls)
        rows.append([name, tests, diffs, equal, wall])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def details(results: Sequence[Result], variants: Sequence[str]) -> tuple[str, int]:
    """The differences log's text and how many runs differ from their plain run."""
    lines: list[str] = []
    differing = 0
    for result in results:
        project = result.project
        if result.error:
            lines += [f"== {project.name} {project.version}: NOT RUN", result.error, ""]
            continue
        plain = result.runs.get("plain")
        if plain is None:
            continue
        for variant in (*COMPARED, *LOGGED_ONLY):
            if variant not in variants or variant not in result.runs:
                continue
            other = result.runs[variant]
            diffs = result.differences(variant)
            summary_ok = result.summary_equal(variant)
            leftover = other.outcome.leftovers > plain.outcome.leftovers
            if not diffs and summary_ok and other.cases is not None and not leftover:
                continue
            if variant in COMPARED:
                differing += 1
            note = "  (context only: not counted)" if variant in LOGGED_ONLY else ""
            lines.append(f"== {project.name} {project.version}: {LABELS[variant]}{note}")
            lines.append(f"   plain:   {plain.command}")
            lines.append(f"   {variant}: {other.command}")
            if not summary_ok:
                lines.append(
                    f"   summary: plain {plain.summary!r} (exit {plain.outcome.rc}) vs "
                    f"{other.summary!r} (exit {other.outcome.rc}"
                    + (", timed out" if other.outcome.timed_out else "")
                    + ")"
                )
            if other.cases is None:
                lines.append("   no JUnit XML from this run")
            if leftover:
                lines.append(
                    f"   {other.outcome.leftovers} processes left running after the run "
                    f"(plain: {plain.outcome.leftovers})"
                )
            for diff in diffs:
                lines.append(f"   {diff.key}")
                lines.append(f"       plain: {diff.plain}    {variant}: {diff.other}")
                if diff.message:
                    lines.append(f"       message: {diff.message}")
            lines.append("")
    return "\n".join(lines), differing


def write_docs(text: str, command: str, plugin_line: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{TABLE_START}\n"
        f"Measured {stamp} with `{command}` on {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, pytest {COMMON_DEPS[0].split('==')[1]}; plugin: "
        f"{plugin_line.split(', exported')[0]}.\n\n"
        f"{text}\n{TABLE_END}"
    )
    doc = DOCS.read_text(encoding="utf-8")
    start, end = doc.find(TABLE_START), doc.find(TABLE_END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOCS}: no {TABLE_START} ... {TABLE_END} section to rewrite")
    DOCS.write_text(doc[:start] + block + doc[end + len(TABLE_END) :], encoding="utf-8")


# ----------------------------------------------------------------------------- main


def select(only: str | None, quick: bool) -> list[Project]:
    if only:
        wanted = [_slug(name) for name in only.split(",") if name.strip()]
        known = {_slug(p.name): p for p in PROJECTS}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise SystemExit(f"unknown project(s): {', '.join(unknown)}; see --list")
        return [known[name] for name in wanted]
    return [p for p in PROJECTS if p.quick or not quick]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--only", help="comma-separated project names (default: all)")
    parser.add_argument("--quick", action="store_true", help="only the CI subset")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated runs of {', '.join(VARIANTS)} (plain is always run)",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache directory")
    parser.add_argument(
        "--plugin-ref",
        metavar="REF",
        help="test this git commit of the plugin (exported under the cache) instead of the "
        "checkout as it is",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite the table in docs/fidelity.md"
    )
    parser.add_argument("--list", action="store_true", help="list the corpus and exit")
    return parser.parse_args(argv)


def _iter_variants(spec: str) -> Iterator[str]:
    yield "plain"
    for name in spec.split(","):
        name = name.strip()
        if name and name != "plain":
            if name not in VARIANTS:
                raise SystemExit(f"unknown variant {name!r}; one of {', '.join(VARIANTS)}")
            yield name


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for p in PROJECTS:
            print(f"{p.name:<16} {p.version:<10} {'quick ' if p.quick else '      '}{p.quirks}")
        return 0
    projects = select(args.only, args.quick)
    variants = list(dict.fromkeys(_iter_variants(args.variants)))
    cache: Path = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _become_subreaper()
    plugin, plugin_line = plugin_source(args.plugin_ref, cache)
    print(f"plugin: {plugin_line}", file=sys.stderr, flush=True)
    env = {k: v for k, v in os.environ.items() if k not in SCRUB_ENV}
    results: list[Result] = []
    started = time.monotonic()
    try:
        for project in projects:
            print(f"{project.name} {project.version}: preparing", file=sys.stderr, flush=True)
            try:
                prepared = prepare(project, cache, env, plugin)
            except PrepareError as exc:
                print(f"  {exc}", file=sys.stderr, flush=True)
                results.append(Result(project, error=str(exc)))
                continue
            results.append(run_project(prepared, variants, cache, env))
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: every process started was stopped", file=sys.stderr)
        return 130
    text = table(results, variants)
    log_text, differing = details(results, variants)
    log = cache / "differences.log"
    log.write_text(
        f"plugin: {plugin_line}\n\n" + (log_text + "\n" if log_text else "no differences\n"),
        encoding="utf-8",
    )
    print(f"plugin: {plugin_line}\n")
    print(text)
    print(
        f"\n{differing} run(s) differ from their plain run; details: {log}"
        f"\n(total {time.monotonic() - started:.0f} s)"
    )
    if args.write_docs:
        shown = ["python", "realworld/run.py", *(argv if argv is not None else sys.argv[1:])]
        write_docs(text, shlex.join(a for a in shown if a != "--write-docs"), plugin_line)
    if any(r.error for r in results):
        return 2
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
