"""pytest entry point: options, markers, suite classification, and the switch into parallel mode."""

from __future__ import annotations

import contextlib
import gc
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from . import hookspecs
from .agent import AgentSession
from .controller import Controller, SuiteWork
from .coverage_options import add_coverage_options
from .coverage_plugin import COVERAGE_KEY, start_early
from .durations import (
    CACHE_KEY,
    DurationsError,
    cache_update,
    from_cache,
    predict,
    read_durations,
    store_durations,
)
from .metrics import build_metrics, dumps, plan_lines, shard_lines, summary_lines
from .options import Settings, add_options, load_settings, usable_cpus
from .runstate import RunState, ShardRecord
from .scheduling import WorkUnit
from .sharding import Shard, shard_loads, split
from .sizing import Plan, SuiteDemand, plan_suites
from .state import AGENT_ID_KEY, RUN_KEY, SETTINGS_KEY, SUITE_KEY
from .suites import (
    BUILTIN_SUITES,
    SuiteRuleError,
    TestFacts,
    classify,
    known_suites,
    parse_suite_rules,
    suite_settings,
)
from .txspecs import expand, suite_capacity

_MARKERS = (
    "agents_suite(name): put this test in the named suite (pytest-parallel-agents)",
    "agents_group(name): run the tests of this group on one agent, in order",
    "agents_serial: run this test while no other test of the run is running",
    "agents_timeout(seconds): the controller kills this test's agent past this many seconds",
)
_DURATIONS_KEY = pytest.StashKey[dict[str, float]]()
# A test's marks by name, the closest of each name first (see _closest_marks).
_Marks = dict[str, pytest.Mark]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    add_coverage_options(parser)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Iterator[None]:
    # A wrapper runs before every other implementation, pytest-cov's included, and before
    # conftests import the project: coverage must be running by then.
    if not hasattr(early_config, "workerinput"):
        start_early(early_config, in_agent=is_agent(early_config))
    return (yield)


def is_agent(config: pytest.Config) -> bool:
    """Whether this config is an agent's session (the controller sets AGENT_ID_KEY there)."""
    return AGENT_ID_KEY in config.stash or any(
        isinstance(p, AgentSession) for p in config.pluginmanager.get_plugins()
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    if not config.pluginmanager.has_plugin("xdist"):
        config.addinivalue_line("markers", "xdist_group(name): same as agents_group")
    _register_suite_markers(config)
    if is_agent(config) or hasattr(config, "workerinput"):
        return
    settings = load_settings(config)
    config.stash[SETTINGS_KEY] = settings
    if settings.shard is not None and settings.shard.source.startswith("Bazel"):
        _touch_bazel_status_file()
    if settings.needs_durations:
        try:
            config.stash[_DURATIONS_KEY] = read_durations(settings.durations_path)
        except DurationsError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[RUN_KEY] = RunState(
            run_id=uuid.uuid4().hex, budget=settings.agents or usable_cpus()
        )
    if settings.store_durations or _caches_durations(config, settings):
        config.pluginmanager.register(_DurationRecorder(config), "parallel-agents-durations")


def _caches_durations(config: pytest.Config, settings: Settings) -> bool:
    """Whether this run keeps its durations in pytest's cache for the next run's schedule."""
    return bool(settings.agents) and config.pluginmanager.has_plugin("cacheprovider")


def _register_suite_markers(config: pytest.Config) -> None:
    """Suite markers are accepted by --strict-markers, in the controller and in agents alike."""
    try:
        rules = parse_suite_rules(config.getini("agents_suites"))
    except SuiteRuleError:
        rules = ()  # reported as a usage error by load_settings in the controller
    names = list(BUILTIN_SUITES) + [r.name for r in rules]
    names += [marker for r in rules for marker in r.markers]
    for name in dict.fromkeys(names):
        config.addinivalue_line("markers", f"{name}: a test of the {name} suite")


def pytest_sessionstart(session: pytest.Session) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None:
        run.session_started = time.perf_counter()


# Collecting and planning tens of thousands of tests allocates millions of long-lived
# objects; with CPython's default thresholds the collector rescans them over and over
# (~11% of collecting 50,000 parametrised tests). Fewer, larger collections still free
# any cyclic garbage; the default is back before agents fork or tests run.
_RELAXED_GC_THRESHOLD: tuple[int, int, int] = (50_000, 20, 100)


@contextlib.contextmanager
def _relaxed_gc() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*_RELAXED_GC_THRESHOLD)
    try:
        yield
    finally:
        if gc.get_threshold() == _RELAXED_GC_THRESHOLD:  # else a conftest set its own: keep it
            gc.set_threshold(*before)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    settings = session.config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.agents:
        return (yield)
    with _relaxed_gc():
        return (yield)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not (settings.classify or settings.shard is not None):
        return  # installed but not asked for: a plain run pays nothing per test
    marks = [_closest_marks(item) for item in items]
    if settings.classify:
        _classify(config, settings, items, marks)
    if settings.shard is not None:
        _select_shard(config, settings.shard, items, marks)


def _deselect(config: pytest.Config, items: list[pytest.Item], keep: list[pytest.Item]) -> None:
    if len(keep) < len(items):
        kept = set(map(id, keep))
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep


def _select_shard(
    config: pytest.Config, shard: Shard, items: list[pytest.Item], marks: list[_Marks]
) -> None:
    """Keep this job's shard; every job computes the same split from node ids and durations."""
    known: dict[str, float] = config.stash.get(_DURATIONS_KEY, {})
    seconds, durations_known = predict((item.nodeid for item in items), known)
    weights: dict[str, float] = {}
    key_of: list[str] = []
    for item, item_marks, predicted in zip(items, marks, seconds, strict=True):
        key = _group(item_marks) or item.nodeid  # a group never spans two shards
        weights[key] = weights.get(key, 0.0) + predicted
        key_of.append(key)
    shards = split(weights, shard.count)
    mine = set(shards[shard.index - 1])
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.durations_known = durations_known
        run.shard = ShardRecord(
            shard.index,
            shard.count,
            shard.source,
            sum(1 for key in key_of if key in mine),
            shard_loads(shards, weights),
            durations_known,
        )
    _deselect(config, items, [i for i, key in zip(items, key_of, strict=True) if key in mine])


def _touch_bazel_status_file() -> None:
    # Bazel's protocol: touching this file tells Bazel the runner understood the sharding.
    status = os.environ.get("TEST_SHARD_STATUS_FILE")
    if status:
        with contextlib.suppress(OSError):
            Path(status).touch()


def _classify(
    config: pytest.Config, settings: Settings, items: list[pytest.Item], marks: list[_Marks]
) -> None:
    names = known_suites(settings.rules)
    rootpath = config.rootpath
    paths: dict[Path, str] = {}  # a module's tests share its path
    hook = config.hook.pytest_agents_classify
    # A hook call per test costs more than classifying it: skip it when nobody listens.
    asked = bool(hook.get_hookimpls())
    for item, item_marks in zip(items, marks, strict=True):
        suite = hook(item=item, suites=names) if asked else None
        if suite is None:
            path = paths.get(item.path)
            if path is None:
                path = paths[item.path] = _relative(item.path, rootpath)
            suite = classify(_facts(item.nodeid, path, item_marks), settings.rules)
        item.stash[SUITE_KEY] = suite
    if settings.suites:
        found = known_suites(settings.rules, (item.stash[SUITE_KEY] for item in items))
        unknown = [name for name in settings.suites if name not in found]
        if unknown:
            raise pytest.UsageError(
                f"--agents-suite: unknown suite {unknown[0]!r}; known suites: {', '.join(found)}"
            )
        _deselect(config, items, [i for i in items if i.stash[SUITE_KEY] in settings.suites])


def pytest_collection_finish(session: pytest.Session) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None:
        run.collected_at = time.perf_counter()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    config = session.config
    settings = config.stash.get(SETTINGS_KEY, None)
    run = config.stash.get(RUN_KEY, None)
    if settings is None or run is None or not settings.classify:
        return None
    if (session.testsfailed and not config.option.continue_on_collection_errors) or (
        config.option.collectonly
    ):
        return None  # pytest's own loop reports the interruption or the collection
    budget = settings.agents or usable_cpus()
    durations = config.stash.get(_DURATIONS_KEY, {})
    # Without a durations file, the last run's figures order the work (longest first).
    # Sharding never uses them: every CI job must compute the same split from the same file.
    cached: dict[str, float] = {}
    if not durations and settings.agents:
        cached = durations = _previous_durations(config)
    with _relaxed_gc():
        marks = [_closest_marks(item) for item in session.items]
        plan, work, serial = _plan(session.items, marks, settings, budget, durations)
    run.plan = plan
    run.durations_known = any(w.durations_known for w in work.values())
    run.planned_at = time.perf_counter()
    config.hook.pytest_agents_plan_ready(config=config, plan=plan)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if settings.plan_only:
        if terminal is not None:
            terminal.write_sep("-", "parallel agents plan")
            lines = plan_lines(plan, run.durations_known)
            if cached and run.durations_known:
                lines.append("predicted seconds: the last run's durations, from pytest's cache")
            if run.shard is not None:
                lines += shard_lines(run.shard)
            for line in lines:
                terminal.write_line(line)
        return True
    if not settings.agents:
        run.reason = "parallel mode is off (--agents 0)"
        return None
    reason = _in_process_reason(config, plan, settings)
    if reason:
        run.reason = reason
        if terminal is not None and config.get_verbosity() >= 0:
            terminal.write_line(f"parallel agents: running in-process: {reason}")
        return None
    run.mode = "parallel"
    if terminal is not None and config.get_verbosity() <= 0:
        # Agents finish tests of many files at once: file headers would repeat on every switch.
        terminal.showfspath = False
    if terminal is not None and config.get_verbosity() >= 0:
        terminal.write_line(
            f"parallel agents: {len(plan.suites)} suites on up to {plan.peak_agents} agents "
            f"(budget {plan.budget}): "
            + ", ".join(f"{s.name} {s.tests}→{s.agents}" for s in plan.suites)
            + (
                "; longest first, by the last run's durations"
                if cached and run.durations_known
                else ""
            )
        )
    coverage = config.stash.get(COVERAGE_KEY, None)
    controller = Controller(
        config,
        session,
        work,
        run,
        basetemp=str(_basetemp(config)),
        max_restarts=settings.max_restarts
        if settings.max_restarts is not None
        else max(4, 4 * plan.peak_agents),
        max_retries=settings.retries,
        timeout=settings.timeout,
        timeouts=_marker_timeouts(marks),
        heartbeat=settings.heartbeat,
        start_method=settings.start_method,
        coverage=coverage.request if coverage is not None else None,
        coverage_sink=coverage.add_remote if coverage is not None else None,
        tx=settings.tx,
        rsync=settings.rsync,
        rsync_ignore=settings.rsync_ignore,
    )
    if coverage is not None:
        # Agents measure the tests; forked agents must not inherit a running tracer.
        coverage.controller.pause()
    try:
        controller.run(plan)
    finally:
        run.tests_reported = controller.reported
        if coverage is not None:
            coverage.controller.start()
    _run_serial(session, serial, run)
    return True


def _marker_timeouts(marks: list[_Marks]) -> dict[int, float]:
    """Per-test limits from ``agents_timeout(seconds)`` (or pytest-timeout's ``timeout``)."""
    limits: dict[int, float] = {}
    for index, item_marks in enumerate(marks):
        for name in ("agents_timeout", "timeout"):
            marker = item_marks.get(name)
            if marker is None:
                continue
            value = marker.args[0] if marker.args else marker.kwargs.get("seconds")
            if isinstance(value, int | float) and value > 0:
                limits[index] = float(value)
                break
    return limits


def _run_serial(session: pytest.Session, indices: list[int], run: RunState) -> None:
    """agents_serial tests run here, after every agent has stopped: nothing runs beside them."""
    items = [session.items[i] for i in indices]
    for position, item in enumerate(items):
        if session.shouldfail or session.shouldstop:
            break
        nextitem = items[position + 1] if position + 1 < len(items) else None
        item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        run.tests_reported += 1


def _in_process_reason(config: pytest.Config, plan: Plan, settings: Settings) -> str:
    if config.option.usepdb or config.option.trace:
        return "--pdb/--trace need the terminal of this process"
    if getattr(config.option, "setupplan", False):
        return "--setup-plan runs nothing"
    if plan.in_process and not settings.tx:  # gateways given: the tests belong there
        return "the plan needs a single agent"
    return ""


def _basetemp(config: pytest.Config) -> Path:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        base: Path = factory.getbasetemp()
        return base
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"pytest-agents-{os.getpid()}"


def _closest_marks(item: pytest.Item) -> _Marks:
    """Each marker name's closest mark (what get_closest_marker returns), in one walk up
    the node tree instead of one per name asked: planning 50,000 tests asks five."""
    marks: _Marks = {}
    for mark in item.iter_markers():
        marks.setdefault(mark.name, mark)
    return marks


def _relative(path: Path, rootpath: Path) -> str:
    try:
        return path.relative_to(rootpath).as_posix()
    except ValueError:
        return path.as_posix()


def _facts(nodeid: str, path: str, marks: _Marks) -> TestFacts:
    explicit = marks.get("agents_suite")
    name = None
    if explicit is not None:
        name = explicit.args[0] if explicit.args else explicit.kwargs.get("name")
    return TestFacts(nodeid, path, tuple(marks), str(name) if name else None)


def _group(marks: _Marks) -> str | None:
    for marker_name in ("agents_group", "xdist_group"):
        marker = marks.get(marker_name)
        if marker is not None:
            name = marker.args[0] if marker.args else marker.kwargs.get("name", "default")
            return f"{marker_name}:{name}"
    return None


def _plan(
    items: list[pytest.Item],
    marks: list[_Marks],
    settings: Settings,
    budget: int,
    known: dict[str, float],
) -> tuple[Plan, dict[str, SuiteWork], list[int]]:
    """Group the collected tests into suites and units, predict them, and size the pools."""
    by_suite: dict[str, list[int]] = {}
    serial: list[int] = []
    for index, item in enumerate(items):
        if "agents_serial" in marks[index]:
            serial.append(index)
            continue
        by_suite.setdefault(item.stash[SUITE_KEY], []).append(index)
    demands: list[SuiteDemand] = []
    work: dict[str, SuiteWork] = {}
    # With --agents-tx a suite can use only the gateways it may run on.
    capacity = suite_capacity(expand(settings.tx), list(by_suite)) if settings.tx else {}
    for suite, slots in capacity.items():
        if slots == 0:
            raise pytest.UsageError(
                f"suite {suite!r} has no --agents-tx gateway to run on: every gateway is bound "
                "to another suite with //suite=NAME"
            )
    for suite, indices in by_suite.items():
        seconds, known_here = predict((items[i].nodeid for i in indices), known)
        work[suite] = SuiteWork(
            suite,
            indices,
            _units(items, marks, indices, seconds),
            known_here,
            tuple(dict.fromkeys(str(items[i].path) for i in indices)),
        )
        rule = suite_settings(settings.rules, suite)
        demands.append(
            SuiteDemand(
                suite,
                len(indices),
                sum(seconds) if known_here else None,
                items=rule.items or settings.items,
                min_items=settings.min_items,
                max_agents=min(rule.max_agents or capacity[suite], capacity[suite])
                if capacity
                else rule.max_agents,
                exclusive=rule.exclusive,
            )
        )
    return plan_suites(demands, budget), work, serial


def _units(
    items: list[pytest.Item], marks: list[_Marks], indices: Iterable[int], seconds: list[float]
) -> list[WorkUnit]:
    """Each test is a unit, except that a group's tests form one unit, in collection order."""
    units: list[list[tuple[int, float]]] = []
    groups: dict[str, list[tuple[int, float]]] = {}
    for index, predicted in zip(indices, seconds, strict=True):
        group = _group(marks[index])
        if group is None:
            units.append([(index, predicted)])
        elif group in groups:
            groups[group].append((index, predicted))
        else:
            groups[group] = [(index, predicted)]
            units.append(groups[group])
    out: list[WorkUnit] = []
    for unit in units:
        # "path::Class::test[id]": the module, and the class ("" for a module-level test).
        parts = items[unit[0][0]].nodeid.split("::")
        out.append(
            WorkUnit(
                tuple(i for i, _ in unit),
                sum(s for _, s in unit),
                parts[0],
                "::".join(parts[1:-1]),
            )
        )
    return out


_PREVIOUS_KEY = pytest.StashKey[dict[str, float]]()


def _previous_durations(config: pytest.Config) -> dict[str, float]:
    """The durations the last run kept in pytest's cache, read once per run."""
    previous = config.stash.get(_PREVIOUS_KEY, None)
    if previous is None:
        cache = getattr(config, "cache", None)
        previous = from_cache(cache.get(CACHE_KEY, {})) if cache is not None else {}
        config.stash[_PREVIOUS_KEY] = previous
    return previous


class _DurationRecorder:
    """Sums setup, call and teardown seconds per test, from local or replayed reports."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self.measured: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.measured[report.nodeid] = self.measured.get(report.nodeid, 0.0) + report.duration


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    settings = config.stash.get(SETTINGS_KEY, None)
    run = config.stash.get(RUN_KEY, None)
    if settings is None or run is None:
        return
    run.finished_at = time.perf_counter()
    if (
        run.shard is not None
        and run.shard.tests == 0
        and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    ):
        # An empty shard is a normal outcome of splitting a small suite over many jobs.
        session.exitstatus = pytest.ExitCode.OK
    if run.mode == "in-process":
        run.tests_reported = _terminal_tests(config)
    config.hook.pytest_agents_run_finished(config=config, run=run)
    recorder = config.pluginmanager.get_plugin("parallel-agents-durations")
    if isinstance(recorder, _DurationRecorder) and recorder.measured and not settings.plan_only:
        if settings.store_durations:
            run.durations = recorder.measured
            try:
                store_durations(settings.durations_path, recorder.measured)
            except DurationsError as exc:
                _warn(config, str(exc))
        cache = getattr(config, "cache", None)
        if cache is not None and _caches_durations(config, settings):
            cache.set(CACHE_KEY, cache_update(_previous_durations(config), recorder.measured))
    if settings.metrics_path is not None:
        document = build_metrics(run, _outcomes(config))
        try:
            settings.metrics_path.write_text(dumps(document), encoding="utf-8")
        except OSError as exc:
            _warn(config, f"cannot write metrics to {settings.metrics_path}: {exc}")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    run = config.stash.get(RUN_KEY, None)
    settings = config.stash.get(SETTINGS_KEY, None)
    if run is None or settings is None or settings.plan_only:
        return
    lines = summary_lines(run) if settings.agents else []
    if run.shard is not None:
        lines += shard_lines(run.shard)
    if not lines:
        return
    terminalreporter.write_sep("-", "parallel agents")
    for line in lines:
        terminalreporter.write_line(line)
    if settings.metrics_path is not None:
        terminalreporter.write_line(f"metrics: {settings.metrics_path}")


def _outcomes(config: pytest.Config) -> dict[str, int]:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(terminal, "stats", {}) if terminal is not None else {}
    counts: dict[str, int] = {}
    for category, reports in stats.items():
        if category:
            counts[category] = sum(1 for r in reports if getattr(r, "when", "call") != "collect")
    return counts


def _terminal_tests(config: pytest.Config) -> int:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(terminal, "stats", {}) if terminal is not None else {}
    nodeids = {
        r.nodeid for reports in stats.values() for r in reports if isinstance(r, pytest.TestReport)
    }
    return len(nodeids)


def _warn(config: pytest.Config, message: str) -> None:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"WARNING: pytest-parallel-agents: {message}", yellow=True)


@pytest.fixture(scope="session")
def agent_id(request: pytest.FixtureRequest) -> str:
    """The id of the agent running this test ("unit-0"), or "controller" when not parallel."""
    return request.config.stash.get(AGENT_ID_KEY, "controller")
