"""Benchmark pytest-parallel-agents against plain pytest and pytest-xdist.

    python benchmarks/run.py [--suites tiny,sleep,cpu,imports] [--agents 1,2,4,8] [--reps 3]
                             [--scale 1.0] [--out benchmarks/out] [--timeout 600]

Generates the synthetic suites (``generate.py``) under OUT/suites when missing, then, per
suite, runs every variant once per repetition, interleaved (rep 1: all variants, rep 2: all
variants, ...; each rep in its own seeded shuffled order unless ``--order fixed``): plain
pytest, ``xdist -n N --dist load``, ``xdist -n N --dist worksteal`` and ``--agents N``
(plus, for the ``sleep`` suite, ``--agents N`` with its exact durations file) at each agent
count. Each run records its wall time, its time to first result (the
``benchtiming`` plugin), the peak RSS summed over its whole process tree, and its exit status.
Writes OUT/results.json (after every run) and OUT/results.md (medians of the reps).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import bounds  # noqa: E402
import capacity  # noqa: E402
import generate  # noqa: E402

DEFAULT_SUITES = ("tiny", "sleep", "cpu", "imports")
ALL_SUITES = (*generate.SUITES, "self")
FIXED = "start-up (collect only)"
SAMPLE_INTERVAL = 0.02
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SUMMARY = re.compile(r"\b(passed|failed|error|errors|skipped|no tests ran)\b.* in [0-9.]+s")
# Environment variables that would change what a benchmarked pytest run does.
SCRUB_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_AGENT_ID",
    "PYTEST_AGENT_SUITE",
    "PYTEST_AGENTS_TOTAL",
    "PYTEST_AGENTS_RUN_ID",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_AUTO_NUM_WORKERS",
    "PYTEST_CURRENT_TEST",
    "BENCH_TIMING_OUT",
    # Users' Python writes byte-code caches: without them every run (and every xdist worker)
    # compiles each module it imports, and a plugin run from a fresh checkout pays the most.
    "PYTHONDONTWRITEBYTECODE",
)


def _scrubbed_env() -> dict[str, str]:
    """The runner's environment without what would change what a benchmarked run does."""
    return {k: v for k, v in os.environ.items() if k not in SCRUB_ENV}


@dataclass(frozen=True)
class Variant:
    name: str  # unique within a suite, e.g. "xdist-worksteal -n4"
    kind: str  # plain | xdist-load | xdist-worksteal | agents | agents+durations
    n: int  # worker/agent count; 1 for plain
    args: tuple[str, ...]  # pytest arguments after the prefix
    prefix: tuple[str, ...] = ("-m", "pytest")  # after "python"


@dataclass
class Run:
    suite: str
    variant: str
    kind: str
    n: int
    rep: int
    command: str
    cwd: str
    status: str = "ok"  # ok | fail | timeout | skipped | error | noisy (rerun, not counted)
    rc: int | None = None
    wall_s: float | None = None
    first_result_s: float | None = None
    peak_rss_mib: float | None = None
    leftover_processes: int = 0
    load1_after: float | None = None  # 1-minute load average right after the run
    cpu_s: float | None = None  # CPU seconds of the run's process tree (reaped descendants)
    # CPU the machine spent on anything else during the run (other processes, the host's
    # steal time), as a share of wall time x usable CPUs.
    foreign_share: float | None = None
    log: str = ""
    summary: str = ""  # pytest's final "N passed, ... in S s" line
    tail: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- process tree

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds the machine has been busy, other than idle, plus the host's steal time."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / CLOCK_TICKS


def _rusage_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(limit: float = 30.0, share: float = 0.1) -> None:
    """Wait (at most ``limit`` s) for a second in which the machine is busy below ``share``."""
    cpus = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = machine_cpu()
        time.sleep(1.0)
        if (machine_cpu() - before) / cpus < share:
            return


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a process, from /proc/PID/stat; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The fields after the command name, which is in parentheses and may hold spaces.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[1]), int(rest[3])
    except (IndexError, ValueError):
        return None


def _proc_table(cache: dict[int, tuple[int, int]] | None = None) -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id) for every process in /proc.

    With ``cache`` (updated in place), only processes not seen before have their stat read: a
    sampler then costs one directory listing per sample instead of one read per process.
    """
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        known = cache.get(pid) if cache is not None else None
        entry = known if known is not None else _read_stat(pid)
        if entry is not None:
            table[pid] = entry
    if cache is not None:
        cache.clear()
        cache.update(table)
    return table


def tree_pids(root: int, table: dict[int, tuple[int, int]] | None = None) -> set[int]:
    """The root process and all its descendants (ppid chain), plus any process still in the
    root's session (started with start_new_session, so its sid is the root's pid): that also
    catches descendants reparented to init after their parent exited."""
    table = _proc_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _sid) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {root} if root in table else set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    found.update(pid for pid, (_ppid, sid) in table.items() if sid == root)
    return found


def _rss_bytes(pid: int) -> int:
    # /proc/PID/statm's second field is the resident set in pages, the same figure as VmRSS.
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every SAMPLE_INTERVAL seconds; keeps the max."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()
        self._cache: dict[int, tuple[int, int]] = {}

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.perf_counter()
            pids = tree_pids(self.root, _proc_table(self._cache))
            total = sum(_rss_bytes(pid) for pid in pids)
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop_event.wait(max(0.0, SAMPLE_INTERVAL - (time.perf_counter() - started)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _kill_tree(root: int) -> int:
    """SIGKILL the root's process group and every process of its tree; returns how many."""
    pids = tree_pids(root) - {os.getpid()}
    with contextlib.suppress(OSError):
        os.killpg(root, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _live_session_members(sid: int) -> set[int]:
    """Processes (not zombies) still in session ``sid``."""
    alive = set()
    for pid, (_ppid, psid) in _proc_table().items():
        if psid != sid:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if data[data.rfind(b")") + 2 :][:1] not in (b"Z", b"X"):
            alive.add(pid)
    return alive


# --------------------------------------------------------------------------- one run


def run_once(
    variant: Variant,
    suite: str,
    rep: int,
    cwd: Path,
    logdir: Path,
    timeout: float,
) -> Run:
    cmd = [sys.executable, *variant.prefix, *variant.args]
    slug = variant.name.replace(" ", "_").replace("+", "plus")
    logdir.mkdir(parents=True, exist_ok=True)
    log_path = logdir / f"{slug}.rep{rep}.log"
    timing_path = logdir / f"{slug}.rep{rep}.timing.json"
    timing_path.unlink(missing_ok=True)
    env = _scrubbed_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    env["BENCH_TIMING_OUT"] = str(timing_path)
    env["PY_COLORS"] = "0"
    record = Run(
        suite=suite,
        variant=variant.name,
        kind=variant.kind,
        n=variant.n,
        rep=rep,
        command=shlex.join(cmd),
        cwd=str(cwd),
        log=str(log_path),
    )
    with open(log_path, "wb") as log:
        machine_before = machine_cpu()
        children_before = _rusage_cpu(resource.RUSAGE_CHILDREN)
        self_before = _rusage_cpu(resource.RUSAGE_SELF)
        start_wall = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            record.rc = proc.wait(timeout=timeout)
            record.wall_s = time.perf_counter() - start
        except subprocess.TimeoutExpired:
            record.wall_s = time.perf_counter() - start
            _kill_tree(proc.pid)
            proc.wait()
            record.status = "timeout"
            record.rc = proc.returncode
        finally:
            sampler.stop()
    # The run's tree is reaped by now (its descendants by it); this process's own sampling
    # counts as ours too, not as foreign.
    record.cpu_s = _rusage_cpu(resource.RUSAGE_CHILDREN) - children_before
    own = record.cpu_s + _rusage_cpu(resource.RUSAGE_SELF) - self_before
    foreign = max(0.0, machine_cpu() - machine_before - own)
    if record.wall_s:
        record.foreign_share = foreign / (record.wall_s * len(os.sched_getaffinity(0)))
    record.load1_after = os.getloadavg()[0]
    # Agents or workers that outlived the run would disturb the next one: count and end them.
    leftovers = _live_session_members(proc.pid)
    if leftovers:
        record.leftover_processes = len(leftovers)
        for pid in leftovers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    record.peak_rss_mib = sampler.peak / 2**20 if sampler.samples else None
    if record.status != "timeout" and record.rc != 0:
        record.status = "fail"
    try:
        timing = json.loads(timing_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        timing = {}
    first = timing.get("first_call") or timing.get("first_report")
    # Only the pytest process started here counts, not an agent or worker that wrote the file.
    if first is not None and timing.get("pid") == proc.pid:
        record.first_result_s = first - start_wall
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    record.summary = next((ln.strip("= ") for ln in reversed(lines) if SUMMARY.search(ln)), "")
    if record.status != "ok":
        record.tail = lines[-15:]
    return record


# --------------------------------------------------------------------------- variants


def variants_for(suite: str, agents: list[int], no_durations: Path) -> list[Variant]:
    base = ("-q", "-p", "no:cacheprovider", "-p", "benchtiming")
    off = (*base, "-p", "no:parallel_agents")
    out = [Variant("plain", "plain", 1, off)]
    if suite == "covered":
        return _coverage_variants(base, off, agents, no_durations)
    # What every run pays before and after its tests: interpreter, pytest, plugins, collection.
    out.append(Variant(FIXED, "fixed", 1, (*off, "--collect-only")))
    for n in agents:
        for dist in ("load", "worksteal"):
            out.append(
                Variant(
                    f"xdist-{dist} -n{n}", f"xdist-{dist}", n, (*off, "-n", str(n), "--dist", dist)
                )
            )
        on = (*base, "--agents", str(n), "--agents-items", "1", "--agents-min-items", "1")
        # The plugin reads .test_durations by default: point it at a file that does not exist.
        out.append(
            Variant(f"agents {n}", "agents", n, (*on, "--agents-durations", str(no_durations)))
        )
        if suite == "sleep":
            out.append(
                Variant(
                    f"agents {n} +durations",
                    "agents+durations",
                    n,
                    (*on, "--agents-durations", ".test_durations"),
                )
            )
    return out


def _coverage_variants(
    base: tuple[str, ...], off: tuple[str, ...], agents: list[int], no_durations: Path
) -> list[Variant]:
    """Each runner with and without coverage of covpkg, reports off (data files only)."""
    out = [
        Variant("plain", "plain", 1, off),
        Variant(
            "coverage run",
            "coverage-run",
            1,
            off,
            ("-m", "coverage", "run", "--source=covpkg", "-m", "pytest"),
        ),
    ]
    for n in agents:
        xdist = (*off, "-n", str(n), "--dist", "worksteal")
        out.append(Variant(f"xdist-worksteal -n{n}", "xdist-worksteal", n, xdist))
        out.append(
            Variant(
                f"xdist-worksteal -n{n} +pytest-cov",
                "xdist-worksteal+cov",
                n,
                (*xdist, "--cov=covpkg", "--cov-report="),
            )
        )
        on = (*base, "--agents", str(n), "--agents-items", "1", "--agents-min-items", "1")
        on = (*on, "--agents-durations", str(no_durations))
        out.append(Variant(f"agents {n}", "agents", n, on))
        out.append(
            Variant(
                f"agents {n} +cov",
                "agents+cov",
                n,
                (*on, "--agents-cov=covpkg", "--agents-cov-report="),
            )
        )
    return out


# --------------------------------------------------------------------------- reporting


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"


@dataclass
class Row:
    variant: str
    kind: str
    n: int
    runs: int
    ok: int
    problems: list[str]
    wall_s: float | None
    wall_min_s: float | None
    wall_max_s: float | None
    first_result_s: float | None
    peak_rss_mib: float | None
    leftover_processes: int
    from_failed: bool  # the figures come from runs whose tests failed (no run succeeded)
    skipped: int
    noisy: int = 0  # runs measured again because other work took the CPUs
    foreign_share: float | None = None


def summarize(runs: list[Run], variants: list[Variant]) -> list[Row]:
    rows = []
    for v in variants:
        skipped = sum(1 for r in runs if r.variant == v.name and r.status == "skipped")
        noisy = sum(1 for r in runs if r.variant == v.name and r.status == "noisy")
        mine = [r for r in runs if r.variant == v.name and r.status not in ("skipped", "noisy")]
        ok = [r for r in mine if r.status == "ok"]
        # With no successful run, show the runs that failed but ran to completion (tests
        # failed, rc > 0), flagged as such: a run that was killed or timed out measures nothing.
        from_failed = not ok
        if from_failed:
            ok = [r for r in mine if r.status == "fail" and r.rc is not None and r.rc > 0]
        walls = [r.wall_s for r in ok if r.wall_s is not None]
        rows.append(
            Row(
                variant=v.name,
                kind=v.kind,
                n=v.n,
                runs=len(mine),
                ok=0 if from_failed else len(ok),
                from_failed=from_failed and bool(ok),
                problems=[
                    r.status if r.status != "fail" else f"rc={r.rc}"
                    for r in mine
                    if r.status != "ok"
                ],
                wall_s=_median(list(walls)),
                wall_min_s=min(walls) if walls else None,
                wall_max_s=max(walls) if walls else None,
                first_result_s=_median([r.first_result_s for r in ok]),
                peak_rss_mib=_median([r.peak_rss_mib for r in ok]),
                leftover_processes=sum(r.leftover_processes for r in mine),
                skipped=skipped,
                noisy=noisy,
                foreign_share=_median([r.foreign_share for r in ok]),
            )
        )
    return rows


def lower_bound(info: dict[str, float], n: int) -> float:
    return max(info["longest"], info["total"] / n)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _speedup(plain: float | None, wall: float | None) -> float | None:
    return None if plain is None or wall is None or wall <= 0 else plain / wall


def suite_table(
    rows: list[Row], sleep_info: dict[str, float] | None, capacity_x: float | None = None
) -> list[str]:
    plain = next((r.wall_s for r in rows if r.kind == "plain"), None)
    fixed = next((r.wall_s for r in rows if r.kind == "fixed"), None)
    plain_tests = _minus(plain, fixed)
    # Figures from failed runs are compared only with each other's, never with good ones.
    plain_failed = next((r.from_failed for r in rows if r.kind == "plain"), False)
    worksteal = {r.n: r.wall_s for r in rows if r.kind == "xdist-worksteal"}
    worksteal_failed = {r.n: r.from_failed for r in rows if r.kind == "xdist-worksteal"}
    header = [
        "variant",
        "ok",
        "wall s",
        "wall s min..max",
        "first result s",
        "peak RSS MiB",
        "foreign CPU",
        "x plain",
        "x worksteal@N",
    ]
    if sleep_info:
        header.append("x lower bound")
        if fixed is not None:
            header.append("x lower bound, start-up excluded")
    if capacity_x is not None and fixed is not None:
        header += ["speed-up, start-up excluded", "of capacity"]
    # Coverage variants: the cost of coverage, against the same runner without it.
    without = {(r.kind, r.n): r.wall_s for r in rows}
    base_of = {"coverage-run": "plain", "xdist-worksteal+cov": "xdist-worksteal"}
    base_of["agents+cov"] = "agents"
    measured_cov = any(r.kind in base_of for r in rows)
    if measured_cov:
        header.append("x without coverage")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        status = f"{r.ok}/{r.runs}"
        if r.problems:
            status += " (" + ", ".join(dict.fromkeys(r.problems)) + ")"
        if r.skipped:
            status += f" ({r.skipped} skipped)"
        if r.noisy:
            status += f" (+{r.noisy} noisy, rerun)"
        if r.leftover_processes:
            status += f" [{r.leftover_processes} leftover procs]"
        spread = "-"
        if r.wall_min_s is not None and r.wall_max_s is not None:
            spread = f"{r.wall_min_s:.2f}..{r.wall_max_s:.2f}"
        cells = [
            _fmt(r.wall_s),
            spread,
            _fmt(r.first_result_s),
            _fmt(r.peak_rss_mib, 0),
            "-" if r.foreign_share is None else f"{r.foreign_share:.0%}",
            "-"
            if r.kind in ("plain", "fixed") or r.from_failed != plain_failed
            else _ratio(r.wall_s, plain),
            "-"
            if r.kind in ("plain", "fixed") or r.from_failed != worksteal_failed.get(r.n)
            else _ratio(r.wall_s, worksteal.get(r.n)),
        ]
        tests_s = None if r.kind == "fixed" else _minus(r.wall_s, fixed)
        if sleep_info:
            bound = lower_bound(sleep_info, r.n)
            cells.append("-" if r.kind == "fixed" else _ratio(r.wall_s, bound))
            if fixed is not None:
                cells.append(_ratio(tests_s, bound))
        if capacity_x is not None and fixed is not None:
            speedup = _speedup(plain_tests, tests_s) if r.kind != "plain" else None
            cells.append(_fmt(speedup) + "x" if speedup is not None else "-")
            cells.append(f"{speedup / capacity_x:.0%}" if speedup is not None and r.n == 2 else "-")
        if measured_cov:
            plain_n = 1 if r.kind == "coverage-run" else r.n
            reference = without.get((base_of.get(r.kind, ""), plain_n))
            cells.append(_ratio(r.wall_s, reference) if r.kind in base_of else "-")
        if r.from_failed:
            cells = [c if c == "-" else f"({c})" for c in cells]
        cells = [r.variant, status, *cells]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_capacity(suite_runs: list[Run], capacities: list[float]) -> list[str]:
    """ "variant NN%" for each N = 2 variant: the median of its reps' shares of capacity."""
    ok = [r for r in suite_runs if r.status == "ok" and r.wall_s is not None]
    startups = [r.wall_s for r in ok if r.kind == "fixed" and r.wall_s is not None]
    plain = {r.rep: r.wall_s for r in ok if r.kind == "plain" and r.wall_s is not None}
    if not startups or not plain:
        return []
    startup = statistics.median(startups)
    cells = []
    for name in dict.fromkeys(r.variant for r in ok if r.n == 2 and r.kind != "plain"):
        walls = {r.rep: r.wall_s for r in ok if r.variant == name and r.wall_s is not None}
        shares = capacity.paired_shares(plain, walls, capacities, startup)
        if shares:
            cells.append(f"{name} {statistics.median(shares):.0%}")
    return cells


def _load_range(runs: list[Run]) -> str:
    loads = [r.load1_after for r in runs if r.load1_after is not None]
    if not loads:
        return "?"
    return f"min {min(loads):.2f}, median {statistics.median(loads):.2f}, max {max(loads):.2f}"


def machine_info() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "loadavg_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "pytest": version("pytest"),
        "pytest-xdist": version("pytest-xdist"),
        "pytest-parallel-agents": version("pytest-parallel-agents"),
        "git": commit,
    }


def write_results(out: Path, state: dict[str, object], runs: list[Run]) -> None:
    state["runs"] = [asdict(r) for r in runs]
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "results.json")


def render_markdown(
    state: dict[str, object], tables: dict[str, list[str]], notes: dict[str, list[str]]
) -> str:
    machine = state["machine"]
    assert isinstance(machine, dict)
    lines = [
        "# pytest-parallel-agents benchmarks",
        "",
        "Command: `" + str(state["command"]) + "`",
        "",
        f"- machine: {machine['nproc']} usable CPUs ({machine['cpu_count']} online), "
        f"{machine['cpu_model']}, load average at start {machine['loadavg_at_start']}",
        f"- {machine['platform']}, Python {machine['python']}, pytest {machine['pytest']}, "
        f"pytest-xdist {machine['pytest-xdist']}, pytest-parallel-agents "
        f"{machine['pytest-parallel-agents']} (git {machine['git'] or '?'})",
        f"- suites {state['suites']}, agent counts {state['agents']}, {state['reps']} reps "
        f"(interleaved, order {state.get('order', 'fixed')}), scale {state['scale']}, "
        f"timeout {state['timeout_s']} s per run",
        f"- started {state['started']}, took {state.get('elapsed_s', 0):.0f} s; 1-minute load "
        f"average after the runs: {state.get('load_range', '?')} (each run's is in results.json)",
        "",
        "Cells are medians over the successful reps. *first result*: seconds from just before "
        "the process started to the first test's call report in the controller. *peak RSS*: max "
        "over 20 ms samples of the summed RSS of the whole process tree. *x plain* and "
        "*x worksteal@N* divide median wall times (lower is better). Figures in parentheses "
        "come from runs whose tests failed (exit status > 0), shown when no run of that variant "
        "succeeded. *foreign CPU*: CPU time the machine spent on anything but the run (other "
        "processes, the host's steal time, from /proc/stat) over wall time x CPUs, median; a run "
        f"above {state.get('max_foreign', 0.1):.0%} is *noisy*: measured again (at most "
        f"{state.get('noisy_reruns', 2)} times) once the machine is quiet, and not counted.",
    ]
    for suite, table in tables.items():
        lines += ["", f"## {suite}", ""]
        lines += notes.get(suite, [])
        lines += table
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("agent counts must be >= 1")
    return values


def _suite_list(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in ALL_SUITES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown suite(s) {unknown}; known: {', '.join(ALL_SUITES)}"
        )
    return names


# Reshufflings of the sleep suite's durations that the reachability note simulates.
ARRANGEMENTS = 200


def _sleep_reach(recorded: dict[str, float], agents: list[int]) -> list[str]:
    """What schedules without overhead reach on the sleep suite, for the note under its table."""
    layout = bounds.collection_layout(recorded)
    order = [seconds for _, seconds in layout]
    scopes = [scope for scope, _ in layout]
    counts = [n for n in agents if bounds.lower_bound(order, n) > 0]
    reach = "; ".join(
        f"N={n}: greedy {bounds.list_schedule(order, n) / lb:.3f}x"
        f", the plugin's queue {bounds.queue_schedule(order, scopes, n, known=False) / lb:.3f}x"
        f" without durations and {bounds.queue_schedule(order, scopes, n, known=True) / lb:.3f}x"
        f" with them, LPT {bounds.lpt_schedule(order, n) / lb:.3f}x"
        for n in counts
        if (lb := bounds.lower_bound(order, n)) > 0
    )
    lines = [
        "Reachable, simulated without start-up or overhead (`bounds.py`): greedy = each "
        "test in collection order to the first free agent, the best without durations "
        "that keeps collection order; the plugin's queue = its own dispatch (chunks or LPT, "
        "windows, stealing); LPT = longest first, from exact durations. "
        f"Against the lower bound: {reach}."
    ]
    if counts:
        n = max(counts)
        files = len(set(scopes))
        greedy: list[float] = []
        queue: list[float] = []
        for arranged in bounds.arrangements(order, files, ARRANGEMENTS, seed=1):
            seconds = [s for _, s in arranged]
            where = [scope for scope, _ in arranged]
            lb = bounds.lower_bound(seconds, n)
            greedy.append(bounds.list_schedule(seconds, n) / lb)
            queue.append(bounds.queue_schedule(seconds, where, n, known=False) / lb)

        def spread(ratios: list[float]) -> str:
            within = sum(r <= 1.15 for r in ratios) / len(ratios)
            return f"median {statistics.median(ratios):.3f}x, within 1.15x in {within:.0%}"

        lines.append(
            f"Without durations the end depends on where the long tests sit: over "
            f"{ARRANGEMENTS} reshufflings of the same durations (`bounds.arrangements`), at "
            f"N={n} greedy reaches {spread(greedy)}; the plugin's queue {spread(queue)}."
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suites",
        type=_suite_list,
        default=list(DEFAULT_SUITES),
        help="comma-separated: " + ",".join(ALL_SUITES),
    )
    parser.add_argument(
        "--agents", type=_int_list, default=[1, 2, 4, 8], help="agent/worker counts"
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the synthetic suites")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run")
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=0.10,
        help="a run during which other work used more than this share of the CPUs is noisy",
    )
    parser.add_argument(
        "--noisy-reruns", type=int, default=2, help="how often a noisy run is measured again"
    )
    parser.add_argument(
        "--order",
        choices=("shuffled", "fixed"),
        default="shuffled",
        help="variants' order within a repetition: shuffled anew per rep (seeded), or as listed",
    )
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    if args.scale <= 0:
        parser.error("--scale must be > 0")

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    suites_dir = out / "suites"
    no_durations = out / "no-such-durations.json"
    no_durations.unlink(missing_ok=True)

    missing = [
        s
        for s in args.suites
        if s != "self" and not generate.is_current(suites_dir / s, args.scale)
    ]
    if missing:
        print(f"generating {', '.join(missing)} (scale {args.scale}) in {suites_dir}", flush=True)
        generate.generate(suites_dir, missing, args.scale)

    state: dict[str, object] = {
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "machine": machine_info(),
        "suites": args.suites,
        "agents": args.agents,
        "reps": args.reps,
        "scale": args.scale,
        "timeout_s": args.timeout,
        "max_foreign": args.max_foreign,
        "noisy_reruns": args.noisy_reruns,
        "order": args.order,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "suite_info": {},
        "summary": {},
    }
    machine = state["machine"]
    assert isinstance(machine, dict)
    print(f"command: {state['command']}")
    print(
        f"machine: nproc={machine['nproc']} cpu={machine['cpu_model']!r} "
        f"python={machine['python']} "
        f"pytest={machine['pytest']} xdist={machine['pytest-xdist']} "
        f"plugin={machine['pytest-parallel-agents']} git={machine['git']}",
        flush=True,
    )

    began = time.perf_counter()
    runs: list[Run] = []
    tables: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    for suite in args.suites:
        cwd = REPO if suite == "self" else suites_dir / suite
        sleep_info = None
        if suite == "sleep":
            data = json.loads((cwd / "durations.json").read_text(encoding="utf-8"))
            sleep_info = {"total": float(data["total"]), "longest": float(data["longest"])}
        meta_path = cwd / generate.META
        info = (
            json.loads(meta_path.read_text(encoding="utf-8"))
            if meta_path.exists()
            else {"suite": "self", "cwd": str(cwd)}
        )
        suite_info = state["suite_info"]
        assert isinstance(suite_info, dict)
        suite_info[suite] = info
        variants = variants_for(suite, args.agents, no_durations)
        logdir = out / "logs" / suite

        # One untimed collection first, with every benchmarked plugin loaded: byte-code caches
        # (of the tests, pytest, xdist and this plugin) and the page cache are warm for rep 1.
        warm = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
            cwd=cwd,
            env=_scrubbed_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=args.timeout,
            check=False,
        )
        tests = info.get("tests", "the project's own")
        print(
            f"\n== {suite} ({tests} tests; warm-up collection rc={warm.returncode})",
            flush=True,
        )

        skip: set[str] = set()
        suite_runs: list[Run] = []
        capacities: list[float] = []
        loops = capacity.calibrate() if suite == "cpu" else 0
        for rep in range(1, args.reps + 1):
            if loops:
                # Interleaved like the variants: the machine's capacity drifts too.
                alone, together, ratio = capacity.measure(loops)
                capacities.append(ratio)
                print(
                    f"[{suite} rep {rep}/{args.reps}] capacity: one process {alone:.2f} s, "
                    f"two at once {together:.2f} s, {ratio:.2f}x",
                    flush=True,
                )
            order = list(variants)
            if args.order == "shuffled":
                # Contention on this kind of machine comes and goes over seconds to minutes:
                # a fixed order would give each variant the same slot of every repetition.
                random.Random(f"{suite}-{rep}").shuffle(order)
            for variant in order:
                if variant.name in skip:
                    record = Run(
                        suite,
                        variant.name,
                        variant.kind,
                        variant.n,
                        rep,
                        "",
                        str(cwd),
                        status="skipped",
                    )
                else:
                    for attempt in range(args.noisy_reruns + 1):
                        record = run_once(variant, suite, rep, cwd, logdir, args.timeout)
                        share = record.foreign_share
                        if (
                            record.status != "ok"
                            or share is None
                            or share <= args.max_foreign
                            or attempt == args.noisy_reruns
                        ):
                            break
                        # Something else took the CPUs: measure again once the machine is quiet.
                        record.status = "noisy"
                        runs.append(record)
                        suite_runs.append(record)
                        print(
                            f"[{suite} rep {rep}/{args.reps}] {variant.name:28} "
                            f"{record.wall_s:7.2f} s  noisy ({share:.0%} foreign CPU): again",
                            flush=True,
                        )
                        wait_for_quiet()
                    # The project's own suite may not run under xdist: after one failure or
                    # timeout there, skip every xdist variant of it.
                    if (
                        suite == "self"
                        and variant.kind.startswith("xdist")
                        and record.status != "ok"
                    ):
                        skip.update(v.name for v in variants if v.kind.startswith("xdist"))
                runs.append(record)
                suite_runs.append(record)
                shown = (
                    "skipped"
                    if record.status == "skipped"
                    else f"{record.wall_s:7.2f} s  {record.status}"
                )
                if record.status in ("fail", "timeout"):
                    shown += f" (rc={record.rc}, log {record.log})"
                print(f"[{suite} rep {rep}/{args.reps}] {variant.name:28} {shown}", flush=True)
                write_results(out, state, runs)

        rows = summarize(suite_runs, variants)
        summary = state["summary"]
        assert isinstance(summary, dict)
        summary[suite] = [asdict(r) for r in rows]
        note = [f"{tests} tests, run from `{cwd}`."]
        if any(r.kind == "fixed" for r in rows):
            note.append(
                f"`{FIXED}` is plain pytest with `--collect-only`: the interpreter, pytest, its "
                "plugins and the collection, which every variant pays once before its tests run; "
                "columns that say *start-up excluded* subtract its median from each wall time."
            )
        if sleep_info:
            note[0] += (
                f" Sleep total {sleep_info['total']:.1f} s, longest {sleep_info['longest']:.3f} s; "
                "lower bound at N = max(longest, total / N) (N = 1 for plain)."
            )
            data = json.loads((cwd / "durations.json").read_text(encoding="utf-8"))
            note.extend(_sleep_reach(data["durations"], args.agents))
        if suite == "slowmod":
            note.append(
                "The plugin runs without durations here (a first run, or CI without the "
                "cache): nothing says the last module is slow."
            )
        capacity_x = statistics.median(capacities) if capacities else None
        if capacity_x is not None:
            note.append(
                "Capacity (`capacity.py`, once per rep): two CPU-bound processes at once get "
                f"{capacity_x:.2f}x one process's throughput here (median; "
                f"{min(capacities):.2f}..{max(capacities):.2f}). *speed-up, start-up excluded* = "
                "(plain - start-up) / (wall - start-up); *of capacity* divides that by the "
                "capacity, at N = 2."
            )
            measured = state.setdefault("capacity", {})
            assert isinstance(measured, dict)
            measured[suite] = capacities
            paired = _paired_capacity(suite_runs, capacities)
            if paired:
                note.append(
                    "Paired per repetition (each rep's speed-up over its own capacity probe), "
                    "medians at N = 2: " + ", ".join(paired) + "."
                )
        notes[suite] = [line for paragraph in note for line in (paragraph, "")]
        table = suite_table(rows, sleep_info, capacity_x)
        failures = [r for r in suite_runs if r.status in ("fail", "timeout")]
        if failures:
            table += ["", "Failures (last lines of output):", ""]
            for r in failures:
                table.append(
                    f"- `{r.variant}` rep {r.rep}: {r.status} rc={r.rc} after {r.wall_s:.1f} s, "
                    f"log `{r.log}`"
                )
                table += ["", "  ```", *("  " + line for line in r.tail[-8:]), "  ```"]
        tables[suite] = table
        print("\n" + "\n".join(table), flush=True)
        state["elapsed_s"] = time.perf_counter() - began
        state["load_range"] = _load_range(runs)
        write_results(out, state, runs)
        (out / "results.md").write_text(render_markdown(state, tables, notes), encoding="utf-8")

    state["elapsed_s"] = time.perf_counter() - began
    state["load_range"] = _load_range(runs)
    write_results(out, state, runs)
    markdown = render_markdown(state, tables, notes)
    (out / "results.md").write_text(markdown, encoding="utf-8")
    print("\n" + markdown)
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
