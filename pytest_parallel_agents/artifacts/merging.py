"""Merge the artifacts of sharded runs (JUnit XML, durations, metrics): data in, data out."""

from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

SCHEMA = 2
# Metrics documents merge reads: schema 1 lacks only fields merge does not need.
READABLE_SCHEMAS = (1, 2)
JUNIT_ROOTS = ("testsuites", "testsuite")
# The outcome children of a <testcase>, in the order that decides a case's single outcome,
# with the <testsuite> attribute that counts them.
_OUTCOME_ATTRIBUTES = (("failure", "failures"), ("error", "errors"), ("skipped", "skipped"))
# Totals that shards accumulate concurrently: the merged figure is the longest shard's.
_MAX_TOTALS = frozenset({"wall_seconds"})

JsonKind = Literal["metrics", "durations"]


# --- recognition ---------------------------------------------------------------------------


def is_junit(root: ET.Element) -> bool:
    """Whether a parsed XML document is a JUnit report (root <testsuites> or <testsuite>)."""
    return root.tag in JUNIT_ROOTS


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def classify_json(data: object) -> JsonKind | None:
    """What a parsed JSON document is by its shape: metrics, durations, or None (neither).

    Metrics: an object with ``"schema"`` 1 or 2 and ``"totals"``. Durations: an object whose
    values are all numbers, or pytest-split's legacy list of ``[nodeid, number]`` pairs.
    The shape decides the kind; the values are validated when the document is read.
    """
    if isinstance(data, dict):
        schema = data.get("schema")
        if _is_number(schema) and schema in READABLE_SCHEMAS and "totals" in data:
            return "metrics"
        if all(_is_number(v) for v in data.values()):
            return "durations"
        return None
    if isinstance(data, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _is_number(p[1])
        for p in data
    ):
        return "durations"
    return None


def metrics_problem(document: Mapping[str, Any]) -> str | None:
    """Why a metrics document cannot be merged, or None when it can."""
    if not isinstance(document.get("totals"), dict):
        return '"totals" is not an object'
    suites = document.get("suites", {})
    if suites is not None and not isinstance(suites, dict):
        return '"suites" is not an object'
    for name, suite in (suites or {}).items():
        if not isinstance(suite, dict):
            return f"suite {name!r} is not an object"
    return None


# --- JUnit XML -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JunitCounts:
    """The counts of a <testsuite>, recomputed from its <testcase> elements."""

    tests: int
    failures: int
    errors: int
    skipped: int


def case_outcome(case: ET.Element) -> Literal["failure", "error", "skipped", "passed"]:
    """The outcome of one <testcase>: its first of failure, error, skipped children, or passed."""
    tags = {child.tag for child in case}
    for tag, _ in _OUTCOME_ATTRIBUTES:
        if tag in tags:
            return tag  # type: ignore[return-value]
    return "passed"


def junit_cases(root: ET.Element) -> list[ET.Element]:
    """Every <testcase> of a JUnit document, in document order, whatever its root shape."""
    return list(root.iter("testcase"))


def junit_suites(root: ET.Element) -> list[ET.Element]:
    """The top-level <testsuite> elements of a JUnit document."""
    return [root] if root.tag == "testsuite" else root.findall("testsuite")


def count_cases(cases: Iterable[ET.Element]) -> JunitCounts:
    """Counts per outcome; each case counts once, under its :func:`case_outcome`."""
    tests = 0
    counted = {"failure": 0, "error": 0, "skipped": 0, "passed": 0}
    for case in cases:
        tests += 1
        counted[case_outcome(case)] += 1
    return JunitCounts(tests, counted["failure"], counted["error"], counted["skipped"])


def _stated_counts(suites: Sequence[ET.Element]) -> JunitCounts | None:
    """The sums of the suites' own tests/failures/errors/skipped, if every suite states all."""
    totals = [0, 0, 0, 0]
    for suite in suites:
        for position, name in enumerate(("tests", "failures", "errors", "skipped")):
            text = suite.get(name)
            if text is None or not text.isdigit():
                return None
            totals[position] += int(text)
    return JunitCounts(*totals) if suites else None


def _seconds(text: str | None) -> float:
    try:
        value = float(text) if text is not None else 0.0
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


def _parse_timestamp(text: str) -> datetime:
    # Python 3.10's fromisoformat does not take a "Z" suffix.
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def earliest_timestamp(stamps: Sequence[str]) -> str | None:
    """The earliest ISO 8601 timestamp, as written; lexical order when they cannot be compared."""
    if not stamps:
        return None
    try:
        return min(stamps, key=_parse_timestamp)
    except (ValueError, TypeError):  # unparseable, or naive and aware mixed
        return min(stamps)


def merge_junit(roots: Sequence[ET.Element], suite_name: str = "pytest") -> ET.Element:
    """One <testsuites> holding one <testsuite> with every <testcase> of ``roots``, in order.

    Cases are deep copies, attributes and children verbatim. The suite's counts are the sums
    of the input suites' own counts when every input suite states them (pytest's way of
    counting differs between versions: pytest 8 counts a test that failed and then errored in
    teardown once, pytest 9 twice), else they are counted from the cases. Its time is the sum
    of the input suites' times, its timestamp the earliest, its hostname kept only when every
    input suite names the same one. Suite-level <property>
    elements are kept once each, in first-seen order.
    """
    suites = [suite for root in roots for suite in junit_suites(root)]
    cases = [case for root in roots for case in junit_cases(root)]
    counts = _stated_counts(suites) or count_cases(cases)
    total_time = sum(_seconds(suite.get("time")) for suite in suites)
    stamps = [stamp for suite in suites if (stamp := suite.get("timestamp"))]
    hosts = {suite.get("hostname") for suite in suites}

    merged_suites = ET.Element("testsuites", {"name": "pytest tests"})
    suite = ET.SubElement(
        merged_suites,
        "testsuite",
        {
            "name": suite_name,
            "errors": str(counts.errors),
            "failures": str(counts.failures),
            "skipped": str(counts.skipped),
            "tests": str(counts.tests),
            "time": f"{total_time:.3f}",
        },
    )
    timestamp = earliest_timestamp(stamps)
    if timestamp is not None:
        suite.set("timestamp", timestamp)
    if len(hosts) == 1 and (host := hosts.pop()) is not None:
        suite.set("hostname", host)

    seen: set[tuple[tuple[str, str], ...]] = set()
    properties: list[ET.Element] = []
    for source in suites:
        for prop in source.findall("properties/property"):
            key = tuple(sorted(prop.attrib.items()))
            if key not in seen:
                seen.add(key)
                properties.append(prop)
    if properties:
        holder = ET.SubElement(suite, "properties")
        for prop in properties:
            kept = copy.deepcopy(prop)
            kept.tail = None
            holder.append(kept)

    for case in cases:
        kept = copy.deepcopy(case)
        kept.tail = None
        suite.append(kept)
    return merged_suites


# --- durations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DurationsSource:
    """One durations document and what orders it among the others: its mtime, then its path."""

    path: str
    mtime_ns: int
    durations: Mapping[str, float]


def merge_durations(sources: Iterable[DurationsSource]) -> dict[str, float]:
    """The union of every source's durations, sorted by node id.

    On a node id present in several sources the value of the most recently modified source
    wins; between sources of equal mtime, the one whose path sorts last.
    """
    merged: dict[str, float] = {}
    for source in sorted(sources, key=lambda s: (s.mtime_ns, s.path)):
        merged.update(source.durations)
    return dict(sorted(merged.items()))


# --- metrics -------------------------------------------------------------------------------


def _add(values: Sequence[Any], combine: Literal["sum", "max"]) -> Any:
    numbers = [v for v in values if _is_number(v) and math.isfinite(v)]
    if not numbers:
        return None
    result = sum(numbers) if combine == "sum" else max(numbers)
    return result if isinstance(result, int) else round(result, 6)


def merge_totals(totals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Numeric totals summed over shards (``wall_seconds``: the longest), plus ``shards``.

    A key missing or null in some shards sums over the others; null when no shard has a number.
    Keys keep their first-seen order; non-numeric values are dropped.
    """
    keys: dict[str, None] = {}
    for one in totals:
        keys.update(dict.fromkeys(one))
    merged: dict[str, Any] = {}
    for key in keys:
        values = [one.get(key) for one in totals]
        if any(v is not None and not _is_number(v) for v in values):
            continue
        merged[key] = _add(values, "max" if key in _MAX_TOTALS else "sum")
    merged["shards"] = len(totals)
    return merged


def merge_suites(suites: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Per suite name: tests and agents (planned and added) summed, wall_seconds the longest,
    predicted_seconds summed when every shard running that suite predicted it, else null."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for one in suites:
        for name, suite in one.items():
            by_name.setdefault(name, []).append(suite)
    merged: dict[str, Any] = {}
    for name, entries in by_name.items():
        predicted = [e.get("predicted_seconds") for e in entries]
        merged[name] = {
            "tests": _add([e.get("tests") for e in entries], "sum") or 0,
            "agents": _add([e.get("agents") for e in entries], "sum") or 0,
            "agents_added": _add([e.get("agents_added") for e in entries], "sum") or 0,
            "predicted_seconds": _add(predicted, "sum")
            if all(_is_number(p) for p in predicted)
            else None,
            "wall_seconds": _add([e.get("wall_seconds") for e in entries], "max"),
        }
    return merged


def merge_metrics(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The merged metrics document: totals and suites combined, every input under ``shards``.

    ``lost`` and ``duplicates`` are the concatenation of the shards' lists.
    """
    return {
        "schema": SCHEMA,
        "mode": "merged",
        "totals": merge_totals([d["totals"] for d in documents]),
        "suites": merge_suites([d.get("suites") or {} for d in documents]),
        "lost": [x for d in documents for x in (d.get("lost") or [])],
        "duplicates": [x for d in documents for x in (d.get("duplicates") or [])],
        "shards": [dict(d) for d in documents],
    }


def shard_warnings(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """What looks wrong in the shards' ``"shard": {"index", "count"}`` keys, one line each.

    Checked only when every document carries a well-formed key: shards missing from the
    declared count, a shard index found more than once, counts that disagree.
    """
    shards: list[tuple[int, int]] = []
    for document in documents:
        shard = document.get("shard")
        if not isinstance(shard, dict):
            return []
        index, count = shard.get("index"), shard.get("count")
        if not isinstance(index, int) or not isinstance(count, int) or count < 1:
            return []
        if isinstance(index, bool) or isinstance(count, bool):
            return []
        shards.append((index, count))
    if not shards:
        return []
    counts = sorted({count for _, count in shards})
    if len(counts) > 1:
        return [f"the metrics files disagree on the shard count: {counts}"]
    warnings: list[str] = []
    indexes = [index for index, _ in shards]
    repeated = sorted({i for i in indexes if indexes.count(i) > 1})
    if repeated:
        warnings.append(f"shard index(es) {repeated} found in more than one metrics file")
    if len(set(indexes)) < counts[0]:
        warnings.append(f"metrics of only {len(set(indexes))} of {counts[0]} shards found")
    return warnings
