"""Merging shard artifacts, pure: JUnit trees, durations and metrics documents in, merged out."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.artifacts.merging import (
    DurationsSource,
    case_outcome,
    classify_json,
    count_cases,
    earliest_timestamp,
    is_junit,
    junit_cases,
    merge_durations,
    merge_junit,
    merge_metrics,
    merge_suites,
    merge_totals,
    metrics_problem,
    shard_warnings,
)

SHARD_A = """<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1"
 skipped="1" tests="5" time="1.250" timestamp="2024-05-01T10:00:05.000000+00:00" hostname="ci-1">
<testcase classname="test_a" name="test_ok" time="0.001" />
<testcase classname="test_a" name="test_fail" time="0.002"><failure message="assert 0">E   assert 0
</failure><system-out>printed &lt;out&gt;</system-out></testcase>
<testcase classname="test_a" name="test_fail" time="0.000"><error message="teardown">boom</error>
</testcase>
<testcase classname="test_a" name="test_skip" time="0.000"><skipped type="pytest.skip"
 message="nope">test_a.py:9: nope</skipped></testcase>
<testcase classname="test_a" name="test_props" time="0.003"><properties><property name="k"
 value="v" /></properties><system-err>err</system-err></testcase>
</testsuite></testsuites>"""

# A bare <testsuite> root (another producer), another host, an earlier timestamp.
SHARD_B = """<testsuite name="other" tests="2" time="0.5" timestamp="2024-05-01T09:59:59+00:00"
 hostname="ci-2"><properties><property name="build" value="7" /></properties>
<testcase classname="test_b" name="test_one" time="0.1" />
<testcase classname="test_b" name="test_xfail" time="0.2"><skipped type="pytest.xfail"
 message="" /></testcase></testsuite>"""

# Several <testsuite> elements under one <testsuites>.
SHARD_C = """<testsuites><testsuite name="s1" time="2" hostname="ci-1"
 timestamp="2024-05-01T10:01:00+00:00"><properties><property name="build" value="7" />
</properties><testcase classname="test_c" name="test_x" /></testsuite>
<testsuite name="s2" time="0.25"><testcase classname="test_c" name="test_y"><failure /></testcase>
</testsuite></testsuites>"""


def _xml(text: str) -> ET.Element:
    return ET.fromstring(text)


def _counts(suite: ET.Element | None) -> list[str | None]:
    assert suite is not None
    return [suite.get(k) for k in ("tests", "failures", "errors", "skipped")]


def _case_strings(root: ET.Element) -> list[bytes]:
    out = []
    for case in root.iter("testcase"):
        kept = copy.deepcopy(case)
        kept.tail = None
        out.append(ET.tostring(kept))
    return out


# --- recognition ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<testsuites/>", True),
        ("<testsuite/>", True),
        ("<coverage/>", False),
        ("<html><body/></html>", False),
    ],
)
def test_is_junit(text: str, expected: bool) -> None:
    assert is_junit(_xml(text)) is expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"schema": 1, "totals": {}}, "metrics"),
        ({"schema": 1.0, "totals": {}, "suites": {}}, "metrics"),
        ({"schema": 2, "totals": {}}, "metrics"),
        ({"schema": 3, "totals": {}}, None),
        ({"schema": True, "totals": {}}, None),
        ({"schema": 1}, "durations"),  # a durations file with one odd node id
        ({"a.py::t": 1.5, "b.py::t": 0}, "durations"),
        ({}, "durations"),
        ([["a.py::t", 1.5], ["b.py::t", 2]], "durations"),
        ({"a.py::t": "slow"}, None),
        ({"a.py::t": True}, None),
        ({"name": "pkg", "version": "1.0"}, None),
        ([1, 2], None),
        ([["a", "b"]], None),
        ("text", None),
        (3, None),
    ],
)
def test_classify_json(data: object, expected: str | None) -> None:
    assert classify_json(data) == expected


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"schema": 1, "totals": {}}, None),
        ({"schema": 1, "totals": {}, "suites": None}, None),
        ({"schema": 1, "totals": []}, '"totals" is not an object'),
        ({"schema": 1, "totals": {}, "suites": []}, '"suites" is not an object'),
        ({"schema": 1, "totals": {}, "suites": {"unit": 3}}, "suite 'unit' is not an object"),
    ],
)
def test_metrics_problem(document: dict[str, Any], problem: str | None) -> None:
    assert metrics_problem(document) == problem


# --- JUnit ---------------------------------------------------------------------------------


def test_case_outcome_and_counts() -> None:
    root = _xml(SHARD_A)
    outcomes = [case_outcome(case) for case in junit_cases(root)]
    assert outcomes == ["passed", "failure", "error", "skipped", "passed"]
    counts = count_cases(junit_cases(root))
    assert (counts.tests, counts.failures, counts.errors, counts.skipped) == (5, 1, 1, 1)


def test_case_with_several_outcome_children_counts_once() -> None:
    case = _xml('<testcase name="t"><skipped/><error/><failure/></testcase>')
    assert case_outcome(case) == "failure"
    assert count_cases([case]).tests == 1


def test_merge_junit_keeps_every_case_in_order_verbatim() -> None:
    roots = [_xml(SHARD_A), _xml(SHARD_B), _xml(SHARD_C)]
    before = [ET.tostring(r) for r in roots]
    merged = merge_junit(roots)

    assert merged.tag == "testsuites"
    suites = merged.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "pytest"
    assert _case_strings(merged) == [s for r in roots for s in _case_strings(r)]
    # The teardown error of test_fail is a second element of the same name: both kept.
    names = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert names.count(("test_a", "test_fail")) == 2
    assert len(names) == 9
    # The inputs are not modified.
    assert [ET.tostring(r) for r in roots] == before


def test_merge_junit_recomputes_suite_attributes() -> None:
    suite = merge_junit([_xml(SHARD_A), _xml(SHARD_B), _xml(SHARD_C)]).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "9"
    assert suite.get("failures") == "2"
    assert suite.get("errors") == "1"
    assert suite.get("skipped") == "2"
    assert suite.get("time") == f"{1.25 + 0.5 + 2 + 0.25:.3f}"
    assert suite.get("timestamp") == "2024-05-01T09:59:59+00:00"
    assert suite.get("hostname") is None  # ci-1, ci-2 and one missing
    # Suite-level properties: one of each, in first-seen order, before the cases.
    assert suite[0].tag == "properties"
    assert [p.attrib for p in suite[0]] == [{"name": "build", "value": "7"}]


def test_merge_junit_sums_the_counts_each_suite_states() -> None:
    """pytest 8 writes tests="1" for a test that failed and then errored in teardown (two
    <testcase> elements); the merged counts keep each producer's way of counting."""
    stated = (
        '<testsuite tests="1" failures="1" errors="1" skipped="0">'
        '<testcase name="t"><failure/></testcase><testcase name="t"><error/></testcase>'
        "</testsuite>"
    )
    other = (
        '<testsuite tests="1" failures="0" errors="0" skipped="0"><testcase name="u"/></testsuite>'
    )
    suite = merge_junit([_xml(stated), _xml(other)]).find("testsuite")
    assert _counts(suite) == ["2", "1", "1", "0"]
    # One suite that does not state its counts: everything is counted from the cases.
    unstated = '<testsuite><testcase name="v"><skipped/></testcase></testsuite>'
    suite = merge_junit([_xml(stated), _xml(unstated)]).find("testsuite")
    assert _counts(suite) == ["3", "1", "1", "1"]


def test_merge_junit_keeps_a_common_hostname() -> None:
    one = '<testsuite hostname="h" time="1"><testcase name="a"/></testsuite>'
    two = (
        '<testsuites><testsuite hostname="h" time="x"><testcase name="b"/></testsuite></testsuites>'
    )
    suite = merge_junit([_xml(one), _xml(two)]).find("testsuite")
    assert suite is not None
    assert suite.get("hostname") == "h"
    assert suite.get("time") == "1.000"  # an unreadable time counts as 0
    assert suite.get("timestamp") is None
    assert suite.find("properties") is None


def test_merge_junit_of_nothing_is_an_empty_suite() -> None:
    suite = merge_junit([]).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("time")) == ("0", "0", "0.000")


@pytest.mark.parametrize(
    ("stamps", "earliest"),
    [
        ([], None),
        (["2024-05-01T10:00:00+02:00", "2024-05-01T09:00:00+00:00"], "2024-05-01T10:00:00+02:00"),
        (["2024-05-01T09:00:01Z", "2024-05-01T09:00:00.5+00:00"], "2024-05-01T09:00:00.5+00:00"),
        (["2024-05-02T00:00:00", "2024-05-01T23:00:00"], "2024-05-01T23:00:00"),
        # Naive and aware mixed, or unparseable: the lexically first.
        (["2024-05-02T00:00:00", "2024-05-01T23:00:00+00:00"], "2024-05-01T23:00:00+00:00"),
        (["yesterday", "2024-05-01"], "2024-05-01"),
    ],
)
def test_earliest_timestamp(stamps: list[str], earliest: str | None) -> None:
    assert earliest_timestamp(stamps) == earliest


# --- durations -----------------------------------------------------------------------------


def test_merge_durations_union_sorted() -> None:
    merged = merge_durations(
        [
            DurationsSource("/s2/.test_durations", 10, {"b::t": 2.0, "a::t": 1.0}),
            DurationsSource("/s1/.test_durations", 20, {"c::t": 3.0}),
        ]
    )
    assert merged == {"a::t": 1.0, "b::t": 2.0, "c::t": 3.0}
    assert list(merged) == ["a::t", "b::t", "c::t"]


def test_merge_durations_latest_mtime_wins() -> None:
    older = DurationsSource("/z/.test_durations", 100, {"a::t": 9.0, "b::t": 1.0})
    newer = DurationsSource("/a/.test_durations", 200, {"a::t": 0.5})
    assert merge_durations([newer, older]) == {"a::t": 0.5, "b::t": 1.0}
    assert merge_durations([older, newer]) == {"a::t": 0.5, "b::t": 1.0}


def test_merge_durations_equal_mtime_last_path_wins() -> None:
    first = DurationsSource("/a/.test_durations", 100, {"a::t": 1.0})
    last = DurationsSource("/b/.test_durations", 100, {"a::t": 2.0})
    assert merge_durations([last, first]) == {"a::t": 2.0}
    assert merge_durations([first, last]) == {"a::t": 2.0}


# --- metrics -------------------------------------------------------------------------------


def _metrics(**totals: Any) -> dict[str, Any]:
    return {"schema": 1, "run_id": "r", "mode": "in-process", "totals": totals, "suites": {}}


def test_merge_totals_sums_and_takes_the_longest_wall() -> None:
    merged = merge_totals(
        [
            {"tests": 3, "passed": 2, "failed": 1, "collect_seconds": 0.1, "wall_seconds": 4.0},
            {"tests": 2, "passed": 2, "failed": 0, "collect_seconds": 0.2, "wall_seconds": 6.5},
            {"tests": 1, "passed": 0, "failed": 1, "collect_seconds": None, "wall_seconds": 1.0},
        ]
    )
    assert merged == {
        "tests": 6,
        "passed": 4,
        "failed": 2,
        "collect_seconds": 0.3,
        "wall_seconds": 6.5,
        "shards": 3,
    }
    assert isinstance(merged["tests"], int)


def test_merge_totals_nulls_missing_keys_and_odd_values() -> None:
    merged = merge_totals(
        [
            {"execution_seconds": None, "retries": 1, "note": "x"},
            {"execution_seconds": None, "restarts": 2, "note": "y"},
        ]
    )
    assert merged == {"execution_seconds": None, "retries": 1, "restarts": 2, "shards": 2}


def test_merge_suites() -> None:
    merged = merge_suites(
        [
            {
                "unit": {"tests": 10, "agents": 2, "predicted_seconds": 1.5, "wall_seconds": 2.0},
                "db": {
                    "tests": 4,
                    "agents": 1,
                    "agents_added": 1,
                    "predicted_seconds": None,
                    "wall_seconds": 9.0,
                },
            },
            {
                "unit": {"tests": 5, "agents": 1, "predicted_seconds": 0.5, "wall_seconds": 3.0},
                "db": {"tests": 1, "agents": 1, "predicted_seconds": 2.0, "wall_seconds": None},
            },
        ]
    )
    assert merged == {
        # A document from before ``agents_added`` existed counts as none added.
        "unit": {
            "tests": 15,
            "agents": 3,
            "agents_added": 0,
            "predicted_seconds": 2.0,
            "wall_seconds": 3.0,
        },
        "db": {
            "tests": 5,
            "agents": 2,
            "agents_added": 1,
            "predicted_seconds": None,
            "wall_seconds": 9.0,
        },
    }


def test_merge_metrics_keeps_shards_as_they_are() -> None:
    one = _metrics(tests=2, passed=2, wall_seconds=1.0)
    one["lost"] = ["a::t"]
    two = _metrics(tests=1, failed=1, wall_seconds=3.0)
    two["shard"] = {"index": 1, "count": 2}
    before = copy.deepcopy([one, two])
    merged = merge_metrics([one, two])
    assert merged["schema"] == 2
    assert merged["mode"] == "merged"
    assert merged["shards"] == before
    assert merged["totals"] == {
        "tests": 3,
        "passed": 2,
        "wall_seconds": 3.0,
        "failed": 1,
        "shards": 2,
    }
    assert merged["suites"] == {}
    assert merged["lost"] == ["a::t"]
    assert merged["duplicates"] == []
    assert [one, two] == before


@pytest.mark.parametrize(
    ("shards", "warnings"),
    [
        ([None, {"index": 0, "count": 2}], []),  # not every document names its shard
        ([{"index": 0, "count": 2}, {"index": 1, "count": 2}], []),
        ([{"index": 1, "count": 2}, {"index": 2, "count": 2}], []),
        ([{"index": 0, "count": 3}], ["metrics of only 1 of 3 shards found"]),
        (
            [{"index": 0, "count": 2}, {"index": 0, "count": 2}],
            [
                "shard index(es) [0] found in more than one metrics file",
                "metrics of only 1 of 2 shards found",
            ],
        ),
        (
            [{"index": 0, "count": 2}, {"index": 1, "count": 3}],
            ["the metrics files disagree on the shard count: [2, 3]"],
        ),
        ([{"index": "0", "count": 2}], []),
    ],
)
def test_shard_warnings(shards: list[dict[str, Any] | None], warnings: list[str]) -> None:
    documents = []
    for shard in shards:
        document = _metrics(tests=1)
        if shard is not None:
            document["shard"] = shard
        documents.append(document)
    assert shard_warnings(documents) == warnings


# --- properties ----------------------------------------------------------------------------

_nodeids = st.text(st.characters(codec="utf-8"), min_size=1)
_seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    durations=st.dictionaries(_nodeids, _seconds, max_size=40),
    shards=st.integers(min_value=1, max_value=6),
    data=st.data(),
)
def test_merging_a_partition_gives_the_dict_back(
    durations: dict[str, float], shards: int, data: st.DataObject
) -> None:
    owner = {
        nodeid: data.draw(st.integers(min_value=0, max_value=shards - 1)) for nodeid in durations
    }
    mtimes = data.draw(st.lists(st.integers(0, 3), min_size=shards, max_size=shards))
    sources = [
        DurationsSource(
            f"/shard{k}/.test_durations",
            mtimes[k],
            {n: s for n, s in durations.items() if owner[n] == k},
        )
        for k in range(shards)
    ]
    assert merge_durations(sources) == durations
    assert list(merge_durations(sources)) == sorted(durations)


_outcome_children = st.sampled_from(["", "<failure/>", "<error/>", "<skipped/>", "<system-out/>"])


@st.composite
def _junit_shard(draw: st.DrawFn) -> ET.Element:
    suites = draw(st.lists(st.lists(_outcome_children, max_size=6), min_size=1, max_size=3))
    body = "".join(
        f'<testsuite time="{len(cases)}">'
        + "".join(f'<testcase name="t{i}">{child}</testcase>' for i, child in enumerate(cases))
        + "</testsuite>"
        for cases in suites
    )
    root = f"<testsuites>{body}</testsuites>"
    if len(suites) == 1 and draw(st.booleans()):
        root = body
    return ET.fromstring(root)


@settings(max_examples=150, deadline=None)
@given(st.lists(_junit_shard(), max_size=5))
def test_merged_junit_counts_are_the_sums(roots: list[ET.Element]) -> None:
    merged = merge_junit(roots)
    suite = merged.find("testsuite")
    assert suite is not None
    parts = [count_cases(junit_cases(root)) for root in roots]
    assert len(junit_cases(merged)) == sum(p.tests for p in parts)
    assert int(suite.get("tests", "")) == sum(p.tests for p in parts)
    assert int(suite.get("failures", "")) == sum(p.failures for p in parts)
    assert int(suite.get("errors", "")) == sum(p.errors for p in parts)
    assert int(suite.get("skipped", "")) == sum(p.skipped for p in parts)
    assert float(suite.get("time", "")) == sum(
        float(s.get("time", "0")) for r in roots for s in ([r] if r.tag == "testsuite" else r)
    )
