"""Command-line options, their ini twins, and their validation into one Settings value."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

import pytest

from pytest_parallel_agents.files import nearest_existing
from pytest_parallel_agents.planning.sharding import (
    Shard,
    ShardError,
    parse_shard,
    shard_from_bazel,
    shard_from_ci,
)
from pytest_parallel_agents.planning.suites import (
    SuiteRule,
    SuiteRuleError,
    known_suites,
    parse_suite_rules,
)
from pytest_parallel_agents.planning.txspecs import (
    TxSpec,
    TxSpecError,
    can_fork,
    expand,
    parse_tx,
)
from pytest_parallel_agents.transport.protocol import HEARTBEAT_INTERVAL

# Twice the agents' heartbeat interval: one late heartbeat must not kill an agent.
_MIN_HEARTBEAT: Final = 2 * HEARTBEAT_INTERVAL

GROUP: Final = "parallel-agents"
DEFAULT_ITEMS: Final = 5
DEFAULT_MIN_ITEMS: Final = 3
DEFAULT_DURATIONS: Final = ".test_durations"
# --agents-order values; the first is the default.
ORDERS: Final = ("collection", "longest-first")


def add_options(parser: pytest.Parser) -> None:
    """Register every option in one ``parallel-agents`` group, with ini twins."""
    group = parser.getgroup(GROUP, "parallel agents (pytest-parallel-agents)")
    group.addoption(
        "--agents",
        dest="agents",
        metavar="N|auto",
        default=None,
        help="run on N agent processes in total (auto: the CPUs this process may use; "
        "0: off). ini: agents",
    )
    group.addoption(
        "--agents-items",
        dest="agents_items",
        metavar="K",
        default=None,
        help=f"target tests per agent in the scaling formula (default {DEFAULT_ITEMS}). "
        "ini: agents_items",
    )
    group.addoption(
        "--agents-min-items",
        dest="agents_min_items",
        metavar="M",
        default=None,
        help=f"a suite with fewer than M tests gets one agent (default {DEFAULT_MIN_ITEMS}). "
        "ini: agents_min_items",
    )
    group.addoption(
        "--agents-suite",
        dest="agents_suite",
        metavar="NAME",
        action="append",
        default=[],
        help="run only the tests of this suite (repeatable)",
    )
    group.addoption(
        "--agents-plan",
        dest="agents_plan",
        action="store_true",
        default=False,
        help="print the plan (suites, tests, predicted seconds, agents) and run nothing",
    )
    group.addoption(
        "--agents-metrics",
        dest="agents_metrics",
        metavar="PATH",
        default=None,
        help="write the run metrics as JSON to PATH. ini: agents_metrics",
    )
    group.addoption(
        "--agents-events",
        dest="agents_events",
        metavar="PATH",
        default=None,
        help="stream the run's events to PATH as JSON Lines, a line per event as it happens "
        "(docs/events.md). ini: agents_events",
    )
    group.addoption(
        "--agents-live",
        dest="agents_live",
        metavar="auto|on|off",
        default=None,
        help="show each agent's test, done/total and the time left below the progress while "
        "the run goes, in a terminal: auto (default: not in CI, not with -q), on, off. "
        "ini: agents_live",
    )
    group.addoption(
        "--agents-trace",
        dest="agents_trace",
        metavar="PATH",
        default=None,
        help="write the run as Chrome trace-event JSON to PATH, a track per agent "
        "(Perfetto, chrome://tracing). ini: agents_trace",
    )
    group.addoption(
        "--agents-report",
        dest="agents_report",
        metavar="PATH",
        default=None,
        help="write a self-contained HTML report of the run to PATH: a lane per agent, "
        "what bounded the wall time. ini: agents_report",
    )
    group.addoption(
        "--agents-durations",
        dest="agents_durations",
        metavar="PATH",
        default=None,
        help=f"durations file, pytest-split's JSON format (default {DEFAULT_DURATIONS}). "
        "ini: agents_durations",
    )
    group.addoption(
        "--agents-store-durations",
        dest="agents_store_durations",
        action="store_true",
        default=False,
        help="merge this run's test durations into the durations file",
    )
    group.addoption(
        "--agents-start",
        dest="agents_start",
        metavar="fork|spawn",
        default=None,
        help="how local agents start: fork this process after collection (default on Linux) "
        "or spawn fresh interpreters that collect their own files. ini: agents_start",
    )
    group.addoption(
        "--agents-order",
        dest="agents_order",
        metavar="collection|longest-first",
        default=None,
        help="collection (default): every agent runs its tests in the order of the collection, "
        "as a plain run does; longest-first: known durations run longest first and idle "
        "agents take any pending test, for suites whose tests do not depend on what ran "
        "before them. ini: agents_order",
    )
    group.addoption(
        "--agents-xdist-compat",
        dest="agents_xdist_compat",
        metavar="on|off",
        default=None,
        help="on (default): agents look like pytest-xdist workers to other plugins "
        "(config.workerinput, PYTEST_XDIST_WORKER=gwN), so that per-worker resources such "
        "as pytest-django's test databases are per agent. ini: agents_xdist_compat",
    )
    group.addoption(
        "--agents-shard",
        dest="agents_shard",
        metavar="K/N|auto",
        default=None,
        help="run shard K of N (1-based) of a duration-balanced split, for CI jobs; auto reads "
        "GitLab, CircleCI, Buildkite or Azure variables (Bazel's are obeyed without this)",
    )
    group.addoption(
        "--agents-max-restarts",
        dest="agents_max_restarts",
        metavar="N",
        default=None,
        help="replacement agents allowed in the run (default: 4 per agent, at least 4). "
        "ini: agents_max_restarts",
    )
    group.addoption(
        "--agents-retries",
        dest="agents_retries",
        metavar="N",
        default=None,
        help="times a test that killed its agent is retried on a fresh agent (default 1). "
        "ini: agents_retries",
    )
    group.addoption(
        "--agents-timeout",
        dest="agents_timeout",
        metavar="SECONDS",
        default=None,
        help="per-test hard limit enforced by the controller: a test running longer has its "
        "agent's stacks dumped, the agent killed and replaced. Marker: agents_timeout(seconds). "
        "ini: agents_timeout",
    )
    group.addoption(
        "--agents-heartbeat",
        dest="agents_heartbeat",
        metavar="SECONDS",
        default=None,
        help="an agent silent (or idle with tests to run) this long is killed and replaced "
        "(default 30). ini: agents_heartbeat",
    )
    group.addoption(
        "--agents-tx",
        dest="agents_tx",
        metavar="SPEC",
        action="append",
        default=[],
        help="start agents on execnet gateways instead of local processes (repeatable): "
        "[N*]popen | ssh=HOST | socket=HOST:PORT, with //python=, //chdir=, //ssh_config=, "
        "//suite=NAME (this host runs only that suite). ini: agents_tx",
    )
    group.addoption(
        "--agents-rsync",
        dest="agents_rsync",
        metavar="DIR",
        action="append",
        default=[],
        help="copy DIR (inside the rootdir) to every remote host before its agents start, "
        "into a directory of this run that is removed afterwards (repeatable). "
        "ini: agents_rsync",
    )
    group.addoption(
        "--agents-rsync-ignore",
        dest="agents_rsync_ignore",
        metavar="GLOB",
        action="append",
        default=[],
        help="names not copied by --agents-rsync, besides .git, __pycache__, .venv and other "
        "caches (repeatable). ini: agents_rsync_ignore",
    )
    group.addoption(
        "--agents-tx-allow-socket",
        dest="agents_tx_allow_socket",
        action="store_true",
        default=False,
        help="allow socket= gateways to addresses other than loopback (an execnet socket "
        "server runs any code sent to its port)",
    )
    parser.addini("agents_tx", "gateway specs for --agents-tx, one per line", type="linelist")
    parser.addini("agents_rsync", "directories for --agents-rsync", type="linelist")
    parser.addini("agents_rsync_ignore", "globs for --agents-rsync-ignore", type="linelist")
    parser.addini("agents_timeout", "default for --agents-timeout", default="")
    parser.addini("agents_heartbeat", "default for --agents-heartbeat", default="")
    parser.addini("agents_max_restarts", "default for --agents-max-restarts", default="")
    parser.addini("agents_retries", "default for --agents-retries", default="")
    parser.addini("agents", "default for --agents (N or auto)", default="")
    parser.addini("agents_start", "default for --agents-start (fork or spawn)", default="")
    parser.addini("agents_order", "default for --agents-order", default="")
    parser.addini("agents_xdist_compat", "default for --agents-xdist-compat", default="")
    parser.addini("agents_items", "default for --agents-items", default="")
    parser.addini("agents_min_items", "default for --agents-min-items", default="")
    parser.addini("agents_metrics", "default for --agents-metrics", default="")
    parser.addini("agents_events", "default for --agents-events", default="")
    parser.addini("agents_trace", "default for --agents-trace", default="")
    parser.addini("agents_live", "default for --agents-live", default="")
    parser.addini("agents_report", "default for --agents-report", default="")
    parser.addini("agents_durations", "default for --agents-durations", default="")
    parser.addini(
        "agents_suites",
        "suite rules, one per line: 'NAME: marker=a,b path=GLOB exclusive max_agents=N items=K'",
        type="linelist",
        default=[],
    )


@final
@dataclass(frozen=True)
class Settings:
    """Every option of the plugin, validated."""

    agents: int  # 0 when parallel mode is off
    agents_given: bool  # whether --agents or the ini asked for parallel mode at all
    items: int
    min_items: int
    suites: tuple[str, ...]
    plan_only: bool
    metrics_path: Path | None
    durations_path: Path
    store_durations: bool
    rules: tuple[SuiteRule, ...]
    start_method: str
    in_order: bool  # --agents-order collection
    xdist_compat: bool
    shard: Shard | None
    max_restarts: int | None
    retries: int
    timeout: float | None
    heartbeat: float
    tx: tuple[TxSpec, ...] = ()
    rsync: tuple[Path, ...] = ()
    rsync_ignore: tuple[str, ...] = ()
    events_path: Path | None = None
    trace_path: Path | None = None
    report_path: Path | None = None
    live: str = "auto"  # --agents-live

    @property
    def observed(self) -> bool:
        """Whether the run's events are recorded (for the events file, trace or report)."""
        return bool(self.events_path or self.trace_path or self.report_path)

    @property
    def classify(self) -> bool:
        """Whether tests need a suite at all in this run."""
        return bool(self.agents or self.plan_only or self.suites)

    @property
    def needs_durations(self) -> bool:
        return bool(
            self.classify
            or self.store_durations
            or self.metrics_path
            or self.shard
            or self.observed
        )


def usable_cpus() -> int:
    """CPUs this process may run on: affinity and PYTHON_CPU_COUNT respected."""
    forced = os.environ.get("PYTHON_CPU_COUNT", "")
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    if sys.version_info >= (3, 13):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def load_settings(config: pytest.Config) -> Settings:
    """Read and validate options and ini values; raise UsageError with one line on bad input."""
    option = config.option
    raw_agents = option.agents if option.agents is not None else _ini(config, "agents")
    agents = parse_agents(raw_agents) if raw_agents else 0
    tx = _tx_specs(config)
    if tx:
        slots = len(expand(tx))
        if option.agents is not None and str(option.agents).strip().lower() not in (
            "auto",
            str(slots),
        ):
            raise pytest.UsageError(
                f"--agents {option.agents} and --agents-tx ({slots} agents) disagree; "
                "with --agents-tx the gateway specs decide how many agents run"
            )
        agents, raw_agents = slots, str(slots)
    rsync = _rsync_dirs(config, tx)
    items = _positive(option.agents_items or _ini(config, "agents_items"), "--agents-items")
    min_items = _positive(
        option.agents_min_items or _ini(config, "agents_min_items"), "--agents-min-items"
    )
    try:
        rules = parse_suite_rules(config.getini("agents_suites"))
    except SuiteRuleError as exc:
        raise pytest.UsageError(str(exc)) from None
    names = known_suites(rules)
    for spec in tx:
        if spec.suite is not None and spec.suite not in names:
            raise pytest.UsageError(
                f"--agents-tx {spec.raw!r}: unknown suite {spec.suite!r}; "
                f"known suites: {', '.join(names)}"
            )
    metrics = option.agents_metrics or _ini(config, "agents_metrics")
    metrics_path = _writable(config, metrics, "--agents-metrics") if metrics else None
    written = {"--agents-metrics": metrics_path}
    outputs: dict[str, Path | None] = {}
    for name in ("events", "trace", "report"):
        raw = getattr(option, f"agents_{name}", None) or _ini(config, f"agents_{name}")
        path = _writable(config, raw, f"--agents-{name}") if raw else None
        flag = f"--agents-{name}"
        for other, taken in written.items():
            if path is not None and taken is not None and path == taken:
                raise pytest.UsageError(f"{flag} and {other} name the same file: {path}")
        written[flag] = outputs[name] = path
    live = (option.agents_live or _ini(config, "agents_live") or "auto").strip().lower()
    if live not in ("auto", "on", "off"):
        raise pytest.UsageError(f"--agents-live expects auto, on or off, got {live!r}")
    durations = option.agents_durations or _ini(config, "agents_durations") or DEFAULT_DURATIONS
    durations_path = _resolve(config, durations)
    if option.agents_store_durations:
        _writable(config, str(durations_path), "--agents-durations")
    numprocesses = getattr(option, "numprocesses", None)
    if agents and numprocesses:
        raise pytest.UsageError(
            "--agents and pytest-xdist's -n/--numprocesses both ask for parallel workers; use one"
        )
    start_method = (option.agents_start or _ini(config, "agents_start") or "").strip().lower()
    if tx and start_method == "fork":
        raise pytest.UsageError("--agents-start fork cannot be used with --agents-tx")
    if start_method not in ("", "fork", "spawn"):
        raise pytest.UsageError(f"--agents-start expects fork or spawn, got {start_method!r}")
    if start_method == "fork" and not can_fork():
        raise pytest.UsageError("--agents-start fork is not available on this platform")
    order = (option.agents_order or _ini(config, "agents_order") or ORDERS[0]).strip().lower()
    if order not in ORDERS:
        raise pytest.UsageError(f"--agents-order expects {' or '.join(ORDERS)}, got {order!r}")
    compat = (
        (option.agents_xdist_compat or _ini(config, "agents_xdist_compat") or "on").strip().lower()
    )
    if compat not in ("on", "off"):
        raise pytest.UsageError(f"--agents-xdist-compat expects on or off, got {compat!r}")
    try:
        shard = _shard(option.agents_shard)
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Settings(
        agents=agents,
        agents_given=bool(raw_agents),
        items=items if items is not None else DEFAULT_ITEMS,
        min_items=min_items if min_items is not None else DEFAULT_MIN_ITEMS,
        suites=tuple(dict.fromkeys(option.agents_suite or ())),
        plan_only=bool(option.agents_plan),
        metrics_path=metrics_path,
        durations_path=durations_path,
        store_durations=bool(option.agents_store_durations),
        rules=rules,
        start_method=start_method or ("fork" if can_fork() else "spawn"),
        in_order=order == ORDERS[0],
        xdist_compat=compat == "on",
        shard=shard,
        max_restarts=_count(
            option.agents_max_restarts or _ini(config, "agents_max_restarts"),
            "--agents-max-restarts",
        ),
        timeout=_seconds(
            option.agents_timeout or _ini(config, "agents_timeout"), "--agents-timeout"
        ),
        heartbeat=_heartbeat(option.agents_heartbeat or _ini(config, "agents_heartbeat")),
        retries=_default(
            _count(option.agents_retries or _ini(config, "agents_retries"), "--agents-retries"), 1
        ),
        tx=tx,
        rsync=rsync,
        rsync_ignore=tuple(option.agents_rsync_ignore or config.getini("agents_rsync_ignore")),
        events_path=outputs["events"],
        trace_path=outputs["trace"],
        report_path=outputs["report"],
        live=live,
    )


def _tx_specs(config: pytest.Config) -> tuple[TxSpec, ...]:
    raw = list(config.option.agents_tx or config.getini("agents_tx") or ())
    allow = bool(config.option.agents_tx_allow_socket)
    try:
        return tuple(parse_tx(str(spec), allow_remote_socket=allow) for spec in raw)
    except TxSpecError as exc:
        raise pytest.UsageError(str(exc)) from None


def _rsync_dirs(config: pytest.Config, tx: tuple[TxSpec, ...]) -> tuple[Path, ...]:
    """Directories to copy to remote hosts: existing, inside the rootdir (node ids must match)."""
    raw = list(config.option.agents_rsync or config.getini("agents_rsync") or ())
    if not raw:
        return ()
    if not any(spec.kind in ("ssh", "vagrant_ssh") for spec in tx):
        raise pytest.UsageError(
            "--agents-rsync copies over ssh gateways; give at least one --agents-tx ssh=HOST"
        )
    root = config.rootpath.resolve()
    dirs: list[Path] = []
    for entry in raw:
        path = _resolve(config, str(entry)).resolve()
        if not path.is_dir():
            raise pytest.UsageError(f"--agents-rsync: {entry} is not a directory")
        if path != root and root not in path.parents:
            raise pytest.UsageError(
                f"--agents-rsync: {entry} is outside the rootdir {root}; node ids on the hosts "
                "must match this machine's"
            )
        dirs.append(path)
    return tuple(dict.fromkeys(dirs))


def _shard(raw: str | None) -> Shard | None:
    """The shard to run: the option, else Bazel's variables; auto reads the CI's variables."""
    if raw is not None and raw.strip().lower() == "auto":
        return shard_from_ci(os.environ) or shard_from_bazel(os.environ)
    if raw is not None:
        return parse_shard(raw)
    return shard_from_bazel(os.environ)


def _ini(config: pytest.Config, name: str) -> str:
    value = config.getini(name)
    return str(value).strip() if value else ""


def agents_requested(raw: object) -> bool:
    """Whether ``--agents`` (or its ini twin) as given asks for agents; bad input counts as
    asked, so that the caller goes on to :func:`load_settings`, which reports it."""
    text = str(raw or "").strip()
    if not text:
        return False
    try:
        return parse_agents(text) > 0
    except pytest.UsageError:
        return True


def parse_agents(raw: str) -> int:
    """The one parser of ``--agents``: a whole number >= 0, or ``auto`` for the usable CPUs."""
    text = str(raw).strip().lower()
    if text == "auto":
        return usable_cpus()
    if text.isdigit():
        return int(text)
    raise pytest.UsageError(f"--agents expects a whole number >= 0 or 'auto', got {raw!r}")


def _positive(raw: str | None, name: str) -> int | None:
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise pytest.UsageError(f"{name} expects a whole number >= 1, got {raw!r}")
    return int(text)


def _seconds(raw: str | None, name: str) -> float | None:
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise pytest.UsageError(f"{name} expects a number of seconds > 0, got {raw!r}")
    return value


def _heartbeat(raw: str | None) -> float:
    value = _seconds(raw, "--agents-heartbeat")
    if value is None:
        return 30.0
    if value < _MIN_HEARTBEAT:
        # Agents prove they live once a second: a shorter limit kills healthy ones.
        raise pytest.UsageError(
            f"--agents-heartbeat expects at least {_MIN_HEARTBEAT:g} seconds "
            f"(agents send a heartbeat every {HEARTBEAT_INTERVAL:g} s), got {raw!r}"
        )
    return value


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _count(raw: str | None, name: str) -> int | None:
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip()
    if not text.isdigit():
        raise pytest.UsageError(f"{name} expects a whole number >= 0, got {raw!r}")
    return int(text)


def _resolve(config: pytest.Config, raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def _writable(config: pytest.Config, raw: str, name: str) -> Path:
    """Fail before any test runs, not after the whole suite, when a report cannot be written."""
    path = _resolve(config, raw)
    if path.is_dir():
        raise pytest.UsageError(f"{name}: {path} is a directory, expected a file path")
    # Missing directories are created when the file is written; what exists must allow it.
    existing = nearest_existing(path.parent)
    if not existing.is_dir():
        raise pytest.UsageError(f"{name}: {existing} is not a directory")
    if not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise pytest.UsageError(f"{name}: {path} is not writable")
    return path
