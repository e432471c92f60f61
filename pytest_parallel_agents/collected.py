"""From collected pytest items to the planner's inputs: marks, suites, shards, units, limits.

The one place that reads pytest items for planning; what it hands on (TestFacts, WorkUnit,
SuiteDemand) is plain data for the pure modules (suites, sharding, scheduling, sizing).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_parallel_agents.artifacts.durations import predict
from pytest_parallel_agents.controller.loop import SuiteWork
from pytest_parallel_agents.controller.runstate import ShardRecord
from pytest_parallel_agents.options import Settings
from pytest_parallel_agents.planning.scheduling import WorkUnit
from pytest_parallel_agents.planning.sharding import Shard, shard_loads, split
from pytest_parallel_agents.planning.sizing import Plan, SuiteDemand, plan_suites
from pytest_parallel_agents.planning.suites import TestFacts, classify, known_suites, suite_settings
from pytest_parallel_agents.planning.txspecs import expand, suite_capacity
from pytest_parallel_agents.state import RUN_KEY, SUITE_KEY

# A test's marks by name, the closest of each name first (see closest_marks).
Marks = dict[str, pytest.Mark]


def deselect(config: pytest.Config, items: list[pytest.Item], keep: list[pytest.Item]) -> None:
    """Keep only ``keep`` in ``items``; the rest are reported deselected, as ``-k`` does."""
    if len(keep) < len(items):
        kept = set(map(id, keep))
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep


def select_shard(
    config: pytest.Config,
    shard: Shard,
    items: list[pytest.Item],
    marks: list[Marks],
    known: dict[str, float],
) -> None:
    """Keep this job's shard; every job computes the same split from node ids and durations."""
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
    deselect(config, items, [i for i, key in zip(items, key_of, strict=True) if key in mine])


def classify_items(
    config: pytest.Config, settings: Settings, items: list[pytest.Item], marks: list[Marks]
) -> None:
    """Put each test in its suite (item.stash[SUITE_KEY]); keep only ``--agents-suite``'s."""
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
        deselect(config, items, [i for i in items if i.stash[SUITE_KEY] in settings.suites])


# With pytest-timeout active its ``timeout`` marker is its own limit: the controller's kill
# waits this much longer, so that pytest-timeout fails the test (with its message and stack
# dump) first, as in a plain run, and the kill is only the backstop for a test it cannot stop.
TIMEOUT_PLUGIN_MARGIN = 5.0


def marker_timeouts(marks: list[Marks], *, timeout_plugin: bool = False) -> dict[int, float]:
    """Per-test limits from ``agents_timeout(seconds)`` (or pytest-timeout's ``timeout``:
    ``TIMEOUT_PLUGIN_MARGIN`` later when ``timeout_plugin``, pytest-timeout, enforces it)."""
    limits: dict[int, float] = {}
    for index, item_marks in enumerate(marks):
        for name in ("agents_timeout", "timeout"):
            marker = item_marks.get(name)
            if marker is None:
                continue
            value = marker.args[0] if marker.args else marker.kwargs.get("seconds")
            if isinstance(value, int | float) and value > 0:
                margin = TIMEOUT_PLUGIN_MARGIN if name == "timeout" and timeout_plugin else 0.0
                limits[index] = float(value) + margin
                break
    return limits


def closest_marks(item: pytest.Item) -> Marks:
    """Each marker name's closest mark (what get_closest_marker returns), in one walk up
    the node tree instead of one per name asked: planning 50,000 tests asks five."""
    marks: Marks = {}
    for mark in item.iter_markers():
        marks.setdefault(mark.name, mark)
    return marks


def _relative(path: Path, rootpath: Path) -> str:
    try:
        return path.relative_to(rootpath).as_posix()
    except ValueError:
        return path.as_posix()


def _facts(nodeid: str, path: str, marks: Marks) -> TestFacts:
    explicit = marks.get("agents_suite")
    name = None
    if explicit is not None:
        name = explicit.args[0] if explicit.args else explicit.kwargs.get("name")
    return TestFacts(nodeid, path, tuple(marks), str(name) if name else None)


def _group(marks: Marks) -> str | None:
    for marker_name in ("agents_group", "xdist_group"):
        marker = marks.get(marker_name)
        if marker is not None:
            name = marker.args[0] if marker.args else marker.kwargs.get("name", "default")
            return f"{marker_name}:{name}"
    return None


def plan_items(
    items: list[pytest.Item],
    marks: list[Marks],
    settings: Settings,
    budget: int,
    known: dict[str, float],
    serial_fixtures: frozenset[str] = frozenset(),
) -> tuple[Plan, dict[str, SuiteWork], list[int]]:
    """Group the collected tests into suites and units, predict them, and size the pools.

    Tests marked ``agents_serial``, or using one of ``serial_fixtures``, run in the
    controller after the agents (their indices come back as the third value).
    """
    by_suite: dict[str, list[int]] = {}
    serial: list[int] = []
    for index, item in enumerate(items):
        if "agents_serial" in marks[index] or (
            serial_fixtures and serial_fixtures.intersection(getattr(item, "fixturenames", ()))
        ):
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
    items: list[pytest.Item], marks: list[Marks], indices: Iterable[int], seconds: list[float]
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
