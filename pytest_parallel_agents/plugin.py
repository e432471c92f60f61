"""pytest entry point: options, markers, collection hooks, the switch into parallel mode."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_parallel_agents import hookspecs
from pytest_parallel_agents.coverage.options import add_coverage_options
from pytest_parallel_agents.options import Settings, add_options, load_settings, usable_cpus
from pytest_parallel_agents.planning.suites import (
    BUILTIN_SUITES,
    SuiteRuleError,
    parse_suite_rules,
)
from pytest_parallel_agents.state import (
    AGENT_ID_KEY,
    COVERAGE_KEY,
    EVENTS_KEY,
    RUN_KEY,
    SETTINGS_KEY,
)

if TYPE_CHECKING:
    from pytest_parallel_agents.controller.runstate import RunState
    from pytest_parallel_agents.planning.sizing import Plan

# A plain run (no --agents, no shard, no durations) imports only the modules above: the rest
# of the plugin (controller, agents, execnet, coverage) is imported where a run asks for it.

_MARKERS = (
    "agents_suite(name): put this test in the named suite (pytest-parallel-agents)",
    "agents_group(name): run the tests of this group on one agent, in order",
    "agents_serial: run this test while no other test of the run is running",
    "agents_timeout(seconds): the controller kills this test's agent past this many seconds",
)
_DURATIONS_KEY = pytest.StashKey[dict[str, float]]()


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
        from pytest_parallel_agents.coverage.plugin import start_early

        start_early(early_config, in_agent=is_agent(early_config))
    return (yield)


def is_agent(config: pytest.Config) -> bool:
    """Whether this config is an agent's session (the controller sets AGENT_ID_KEY there)."""
    if AGENT_ID_KEY in config.stash:
        return True
    # No agent session exists in a process that never imported its module.
    session = sys.modules.get("pytest_parallel_agents.agent.session")
    return session is not None and any(
        isinstance(p, session.AgentSession) for p in config.pluginmanager.get_plugins()
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
        from pytest_parallel_agents.artifacts.durations import DurationsError, read_durations
        from pytest_parallel_agents.controller.runstate import RunState

        try:
            config.stash[_DURATIONS_KEY] = read_durations(settings.durations_path)
        except DurationsError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[RUN_KEY] = RunState(
            run_id=uuid.uuid4().hex, budget=settings.agents or usable_cpus()
        )
    if settings.store_durations or _caches_durations(config, settings):
        config.pluginmanager.register(_DurationRecorder(config), "parallel-agents-durations")
    if settings.observed:
        _record_events(config, settings, config.stash[RUN_KEY])


def _record_events(config: pytest.Config, settings: Settings, run: RunState) -> None:
    """Record the run's events, for the events file (streamed), the trace and the report."""
    from pytest_parallel_agents.artifacts.events import EventsPlugin, JsonLinesSink
    from pytest_parallel_agents.controller.events import RunEvents

    events = RunEvents()
    if settings.events_path is not None:
        try:
            sink = JsonLinesSink(settings.events_path)
        except OSError as exc:
            raise pytest.UsageError(
                f"--agents-events: cannot write {settings.events_path}: {exc.strerror}"
            ) from None
        events.sinks.append(sink)
        config.add_cleanup(sink.close)
    config.stash[EVENTS_KEY] = events
    config.pluginmanager.register(EventsPlugin(events, run.run_id), EVENTS_PLUGIN)


EVENTS_PLUGIN = "parallel-agents-events"


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
        events = session.config.stash.get(EVENTS_KEY, None)
        if events is not None:
            events.restart_clock(run.session_started)


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
    from pytest_parallel_agents import collected

    marks = [collected.closest_marks(item) for item in items]
    if settings.classify:
        collected.classify_items(config, settings, items, marks)
    if settings.shard is not None:
        known = config.stash.get(_DURATIONS_KEY, {})
        collected.select_shard(config, settings.shard, items, marks, known)


def _touch_bazel_status_file() -> None:
    # Bazel's protocol: touching this file tells Bazel the runner understood the sharding.
    status = os.environ.get("TEST_SHARD_STATUS_FILE")
    if status:
        with contextlib.suppress(OSError):
            Path(status).touch()


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
    from pytest_parallel_agents import collected
    from pytest_parallel_agents.artifacts.metrics import plan_lines, shard_lines
    from pytest_parallel_agents.controller.loop import Controller

    budget = settings.agents or usable_cpus()
    durations = config.stash.get(_DURATIONS_KEY, {})
    # Without a durations file, the last run's figures order the work (longest first).
    # Sharding never uses them: every CI job must compute the same split from the same file.
    cached: dict[str, float] = {}
    if not durations and (settings.agents or settings.plan_only):
        cached = durations = _previous_durations(config)
    with _relaxed_gc():
        marks = [collected.closest_marks(item) for item in session.items]
        plan, work, serial = collected.plan_items(
            session.items, marks, settings, budget, durations, _serial_fixtures(config)
        )
    run.plan = plan
    run.durations_known = any(w.durations_known for w in work.values())
    run.planned_at = time.perf_counter()
    config.hook.pytest_agents_plan_ready(config=config, plan=plan)
    in_process = (
        ""
        if settings.plan_only or not settings.agents
        else _in_process_reason(config, plan, settings)
    )
    _events_start(
        config,
        plan,
        run,
        mode="plan"
        if settings.plan_only
        else "in-process"
        if in_process or not settings.agents
        else "parallel",
        reason=in_process if settings.agents else "parallel mode is off (--agents 0)",
    )
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if settings.plan_only:
        run.mode = "plan"
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
    reason = in_process
    if reason:
        run.reason = reason
        _in_process_environment(config, run.run_id)
        if terminal is not None and config.get_verbosity() >= 0:
            terminal.write_line(f"parallel agents: running in-process: {reason}")
        return None
    run.mode = "parallel"
    if terminal is not None and config.get_verbosity() >= 0:
        terminal.write_line(
            f"parallel agents: {len(plan.suites)} suite{'s' if len(plan.suites) != 1 else ''} "
            f"on up to {plan.peak_agents} agents "
            f"(budget {plan.budget}): "
            + ", ".join(f"{s.name} {s.tests}→{s.agents}" for s in plan.suites)
            + (
                "; longest first, by the last run's durations"
                if cached and run.durations_known and not settings.in_order
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
        timeouts=collected.marker_timeouts(
            marks, timeout_plugin=config.pluginmanager.has_plugin("timeout")
        ),
        heartbeat=settings.heartbeat,
        start_method=settings.start_method,
        in_order=settings.in_order,
        xdist_compat=settings.xdist_compat,
        coverage=coverage.request if coverage is not None else None,
        coverage_sink=coverage.add_remote if coverage is not None else None,
        tx=settings.tx,
        rsync=settings.rsync,
        rsync_ignore=settings.rsync_ignore,
        events=config.stash.get(EVENTS_KEY, None),
        live=_live_view_wanted(config, settings, terminal),
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


def _live_view_wanted(config: pytest.Config, settings: Settings, terminal: object) -> bool:
    from pytest_parallel_agents import compat
    from pytest_parallel_agents.controller.live import wanted

    writer = compat.terminal_writer(terminal)
    if writer is None:
        return False
    isatty = getattr(compat.writer_stream(writer), "isatty", None)
    return wanted(
        settings.live,
        isatty=bool(isatty()) if callable(isatty) else False,
        verbosity=config.get_verbosity(),
        environ=dict(os.environ),
    )


def _events_start(
    config: pytest.Config, plan: Plan, run: RunState, *, mode: str, reason: str
) -> None:
    from pytest_parallel_agents.artifacts.events import EventsPlugin

    recorder = config.pluginmanager.get_plugin(EVENTS_PLUGIN)
    if not isinstance(recorder, EventsPlugin):
        return
    suites = [
        {
            "name": suite.name,
            "tests": suite.tests,
            "agents": suite.agents,
            "wave": number,
            "exclusive": wave.exclusive,
            "predicted_seconds": round(suite.predicted_seconds, 3)
            if run.durations_known and suite.predicted_seconds is not None
            else None,
        }
        for number, wave in enumerate(plan.waves, start=1)
        for suite in wave.suites
    ]
    recorder.start_run(
        mode=mode, budget=plan.budget, suites=suites, reason=reason if mode != "parallel" else ""
    )


def _run_serial(session: pytest.Session, indices: list[int], run: RunState) -> None:
    """agents_serial tests run here, after every agent has stopped: nothing runs beside them."""
    items = [session.items[i] for i in indices]
    for position, item in enumerate(items):
        if session.shouldfail or session.shouldstop:
            break
        nextitem = items[position + 1] if position + 1 < len(items) else None
        item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        run.tests_reported += 1


def _serial_fixtures(config: pytest.Config) -> frozenset[str]:
    """Fixtures whose tests run in the controller, after the agents, where plugins that
    gather their results in-process see them: pytest-benchmark's ``benchmark`` (its table
    and ``--benchmark-json`` come from the controller's session; its timings are the
    better for nothing running beside them)."""
    if not config.pluginmanager.has_plugin("benchmark"):
        return frozenset()
    if config.getoption("benchmark_disable", False) or config.getoption("benchmark_skip", False):
        return frozenset()
    return frozenset({"benchmark"})


_SAVED_ENVIRONMENT = pytest.StashKey[dict[str, str | None]]()


def _in_process_environment(config: pytest.Config, run_id: str) -> None:
    """Parallel mode asked for, run here: the tests see the variables agents see, as the
    ``agent_id`` fixture says ("controller"); put back at unconfigure."""
    wanted = {"PYTEST_AGENT_ID": "controller", "PYTEST_AGENTS_RUN_ID": run_id}
    config.stash[_SAVED_ENVIRONMENT] = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in config.stash.get(_SAVED_ENVIRONMENT, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _in_process_reason(config: pytest.Config, plan: Plan, settings: Settings) -> str:
    if config.option.usepdb or config.option.trace:
        return "--pdb/--trace need the terminal of this process"
    if getattr(config.option, "setupplan", False):
        return "--setup-plan runs nothing"
    if plan.in_process and not settings.tx:  # gateways given: the tests belong there
        return "the plan needs a single agent"
    return ""


def _basetemp(config: pytest.Config) -> Path:
    from pytest_parallel_agents.compat import basetemp_factory

    factory = basetemp_factory(config)
    if factory is not None:
        base: Path = factory.getbasetemp()
        return base
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"pytest-agents-{os.getpid()}"


_PREVIOUS_KEY = pytest.StashKey[dict[str, float]]()


def _previous_durations(config: pytest.Config) -> dict[str, float]:
    """The durations the last run kept in pytest's cache, read once per run."""
    from pytest_parallel_agents.artifacts.durations import CACHE_KEY, from_cache

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
    from pytest_parallel_agents.artifacts.durations import (
        CACHE_KEY,
        DurationsError,
        cache_update,
        store_durations,
    )
    from pytest_parallel_agents.artifacts.metrics import build_metrics, dumps
    from pytest_parallel_agents.compat import show_interrupt_at
    from pytest_parallel_agents.files import write_atomically

    run.finished_at = time.perf_counter()
    if run.mode != "in-process":
        _stats_in_collection_order(config, session)
    if run.interrupt_repr is not None and exitstatus == pytest.ExitCode.INTERRUPTED:
        show_interrupt_at(config, run.interrupt_repr)
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
    document = build_metrics(run, _outcomes(config))
    if settings.metrics_path is not None:
        try:
            write_atomically(settings.metrics_path, dumps(document))
        except OSError as exc:
            _warn(config, f"cannot write metrics to {settings.metrics_path}: {exc}")
    events = config.stash.get(EVENTS_KEY, None)
    if events is not None and not settings.plan_only:
        from pytest_parallel_agents.artifacts.observed import write_observations

        title = f"{config.rootpath.name}: pytest run {run.run_id[:8]}"
        for problem in write_observations(
            events,
            document,
            int(exitstatus),
            title=title,
            trace_path=settings.trace_path,
            report_path=settings.report_path,
        ):
            _warn(config, problem)


def _stats_in_collection_order(config: pytest.Config, session: pytest.Session) -> None:
    """Agents' reports arrive interleaved; the summaries (failures, errors, ``-r`` lines,
    warnings) list them in ``terminalreporter.stats`` order, which in a plain run is the
    collection's. A stable sort puts them back; what no test owns (collection) comes first.
    The terminal reporter writes its summaries after this hook."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(terminal, "stats", None)
    if not isinstance(stats, dict):
        return
    position = {item.nodeid: index for index, item in enumerate(session.items)}

    def key(entry: object) -> int:
        return position.get(getattr(entry, "nodeid", None) or "", -1)

    for entries in stats.values():
        if isinstance(entries, list):
            entries.sort(key=key)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    run = config.stash.get(RUN_KEY, None)
    settings = config.stash.get(SETTINGS_KEY, None)
    if run is None or settings is None or settings.plan_only:
        return
    if config.get_verbosity() < -1:
        return  # -qq: nothing but the tests' own summary, as in a plain run
    from pytest_parallel_agents.artifacts.metrics import shard_lines, summary_lines

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
