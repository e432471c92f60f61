"""Unit tests for suite rule parsing and test classification."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.planning.suites import (
    BUILTIN_SUITES,
    DEFAULT_SUITE,
    SuiteRule,
    SuiteRuleError,
    TestFacts,
    classify,
    known_suites,
    parse_suite_rules,
    suite_settings,
)


def facts(
    path: str = "tests/test_x.py",
    markers: tuple[str, ...] = (),
    explicit: str | None = None,
) -> TestFacts:
    return TestFacts(nodeid=f"{path}::test_it", path=path, markers=markers, explicit_suite=explicit)


# -- parse_suite_rules -------------------------------------------------------


def test_parse_full_rule() -> None:
    (rule,) = parse_suite_rules(
        [
            "  smoke: marker=smoke,quick path=tests/smoke/*,*_smoke.py"
            " exclusive max_agents=2 items=7 "
        ]
    )
    assert rule == SuiteRule(
        name="smoke",
        markers=("smoke", "quick"),
        paths=("tests/smoke/*", "*_smoke.py"),
        exclusive=True,
        max_agents=2,
        items=7,
    )


def test_parse_skips_blank_and_comment_lines() -> None:
    rules = parse_suite_rules(["", "   ", "# a comment", "  # indented comment", "db: marker=db"])
    assert rules == (SuiteRule("db", markers=("db",)),)


def test_parse_builtin_with_settings_only() -> None:
    rules = parse_suite_rules(["performance: exclusive max_agents=1"])
    assert rules == (SuiteRule("performance", exclusive=True, max_agents=1),)


def test_parse_name_with_no_tokens_is_a_rule_with_defaults() -> None:
    assert parse_suite_rules(["custom:"]) == (SuiteRule("custom"),)


def test_parse_repeated_marker_tokens_accumulate_without_duplicates() -> None:
    (rule,) = parse_suite_rules(["db: marker=a marker=b,a path=x/* path=x/*"])
    assert rule.markers == ("a", "b")
    assert rule.paths == ("x/*",)


def test_parse_keeps_order() -> None:
    rules = parse_suite_rules(["b: marker=b", "a: marker=a", "c-1: marker=c"])
    assert [rule.name for rule in rules] == ["b", "a", "c-1"]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("foo bar", "expected 'NAME: rule ...'"),
        (": marker=a", "expected 'NAME: rule ...'"),
        ("1abc: marker=a", "expected 'NAME: rule ...'"),
        ("a b: marker=a", "expected 'NAME: rule ...'"),
        ("db: markers=a", "unknown token 'markers=a'"),
        ("db: fast", "unknown token 'fast'"),
        ("db: exclusive=yes", "unknown token 'exclusive=yes'"),
        ("db: max_agents", "unknown token 'max_agents'"),
        ("db: max_agents=0", "max_agents= needs an integer >= 1"),
        ("db: max_agents=-1", "max_agents= needs an integer >= 1"),
        ("db: max_agents=two", "max_agents= needs an integer >= 1"),
        ("db: items=1.5", "items= needs an integer >= 1"),
        ("db: items=", "items= needs an integer >= 1"),
        ("db: items=2 items=3", "items= given twice"),
        ("db: max_agents=2 max_agents=2", "max_agents= given twice"),
        ("db: marker=", "marker= needs a comma-separated list"),
        ("db: path=a,,b", "path= needs a comma-separated list"),
    ],
)
def test_parse_errors_quote_the_line(line: str, fragment: str) -> None:
    with pytest.raises(SuiteRuleError) as info:
        parse_suite_rules([line])
    message = str(info.value)
    assert message.startswith(f"agents_suites: line {line!r}: ")
    assert fragment in message
    assert "\n" not in message


def test_parse_error_example_from_docs() -> None:
    with pytest.raises(SuiteRuleError, match=r"^agents_suites: line 'foo bar': expected"):
        parse_suite_rules(["foo bar"])


def test_parse_duplicate_names() -> None:
    with pytest.raises(SuiteRuleError, match="defined twice"):
        parse_suite_rules(["db: marker=db", "db: exclusive"])


def test_suite_rule_error_is_a_value_error() -> None:
    assert issubclass(SuiteRuleError, ValueError)


# Fixed pools rather than from_regex, which is slow; they cover the grammar's corners.
_names = st.sampled_from(["unit", "e2e", "db", "api", "_x", "Smoke-2", "a_b-c", "Z9"])
_words = st.sampled_from(["db", "slow", "x_1", "e2e", "exclusive", "items", "api"])


@st.composite
def _rule_lists(draw: st.DrawFn) -> list[SuiteRule]:
    names: list[str] = draw(st.lists(_names, unique=True, max_size=4))
    return [
        SuiteRule(
            name=name,
            markers=tuple(draw(st.lists(_words, unique=True, max_size=3))),
            paths=tuple(w + "/*" for w in draw(st.lists(_words, unique=True, max_size=3))),
            exclusive=draw(st.booleans()),
            max_agents=draw(st.none() | st.integers(1, 99)),
            items=draw(st.none() | st.integers(1, 99)),
        )
        for name in names
    ]


def _render(rule: SuiteRule) -> str:
    tokens = []
    if rule.markers:
        tokens.append("marker=" + ",".join(rule.markers))
    if rule.paths:
        tokens.append("path=" + ",".join(rule.paths))
    if rule.exclusive:
        tokens.append("exclusive")
    if rule.max_agents is not None:
        tokens.append(f"max_agents={rule.max_agents}")
    if rule.items is not None:
        tokens.append(f"items={rule.items}")
    return f"{rule.name}: {' '.join(tokens)}"


@settings(max_examples=200, deadline=None)
@given(_rule_lists())
def test_parse_round_trips_rendered_rules(rules: list[SuiteRule]) -> None:
    assert parse_suite_rules([_render(rule) for rule in rules]) == tuple(rules)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=4))
def test_parse_either_succeeds_or_raises_a_one_line_rule_error(lines: list[str]) -> None:
    try:
        rules = parse_suite_rules(lines)
    except SuiteRuleError as exc:
        assert str(exc).startswith("agents_suites: line ")
        assert "\n" not in str(exc)
    else:
        assert len({rule.name for rule in rules}) == len(rules)


# -- known_suites / suite_settings -------------------------------------------


def test_known_suites_order_and_dedup() -> None:
    rules = [SuiteRule("db"), SuiteRule("unit"), SuiteRule("api")]
    assert known_suites(rules, ["api", "zzz", "e2e", "zzz"]) == (
        *BUILTIN_SUITES,
        "db",
        "api",
        "zzz",
    )


def test_known_suites_default_is_builtins() -> None:
    assert known_suites([]) == BUILTIN_SUITES
    assert DEFAULT_SUITE in BUILTIN_SUITES


def test_suite_settings() -> None:
    rule = SuiteRule("performance", exclusive=True, max_agents=1)
    assert suite_settings([SuiteRule("db"), rule], "performance") is rule
    assert suite_settings([rule], "security") == SuiteRule("security")


# -- classify ----------------------------------------------------------------

RULES = parse_suite_rules(
    [
        "db: marker=database path=tests/db/*",
        "slow: marker=slow,heavy",
        "api: path=tests/api/*.py,*_api.py",
        "performance: exclusive max_agents=1",
        "orphan:",
    ]
)


def test_explicit_suite_wins_over_everything() -> None:
    assert classify(facts("tests/e2e/test_x.py", ("slow", "e2e"), explicit="db"), RULES) == "db"


def test_explicit_suite_may_name_an_unknown_suite() -> None:
    assert classify(facts(explicit="brand-new"), RULES) == "brand-new"


def test_suite_named_marker_beats_directory() -> None:
    assert classify(facts("tests/e2e/test_x.py", ("security",)), RULES) == "security"


def test_first_suite_named_marker_wins() -> None:
    assert classify(facts(markers=("parametrize", "integration", "e2e")), RULES) == "integration"


def test_rule_name_counts_as_suite_marker() -> None:
    assert classify(facts(markers=("orphan",)), RULES) == "orphan"


def test_directory_beats_rules() -> None:
    assert classify(facts("tests/integration/test_x.py", ("heavy",)), RULES) == "integration"


def test_deepest_directory_wins() -> None:
    assert classify(facts("e2e/integration/sub/test_x.py"), RULES) == "integration"
    assert classify(facts("integration/e2e/test_x.py"), RULES) == "e2e"


def test_rule_named_directory_counts() -> None:
    assert classify(facts("tests/orphan/test_x.py"), RULES) == "orphan"


def test_file_name_is_not_a_directory() -> None:
    assert classify(facts("tests/e2e"), RULES) == DEFAULT_SUITE
    assert classify(facts("e2e.py"), RULES) == DEFAULT_SUITE


def test_rules_by_marker_and_path_in_order() -> None:
    assert classify(facts(markers=("heavy",)), RULES) == "slow"
    assert classify(facts("tests/db/test_x.py"), RULES) == "db"
    assert classify(facts("tests/api/test_x.py"), RULES) == "api"
    assert classify(facts("tests/test_x_api.py"), RULES) == "api"
    # Both slow and db match by marker: the earlier rule wins, not the earlier marker.
    assert classify(facts(markers=("heavy", "database")), RULES) == "db"


def test_path_globs_are_case_sensitive() -> None:
    assert classify(facts("tests/API/test_x.py"), RULES) == DEFAULT_SUITE


def test_settings_only_rule_never_matches_by_rule() -> None:
    rules = [SuiteRule("custom", exclusive=True)]
    assert classify(facts("tests/test_x.py", ("anything",)), rules) == DEFAULT_SUITE


def test_default_suite() -> None:
    assert classify(facts(), []) == DEFAULT_SUITE
    assert classify(facts(), RULES) == DEFAULT_SUITE


def test_facts_are_not_collected() -> None:
    assert TestFacts.__test__ is False


_segments = st.sampled_from([*BUILTIN_SUITES, "db", "tests", "sub", "orphan"])
_markers = st.sampled_from([*BUILTIN_SUITES, "db", "slow", "database", "heavy", "skip", "xfail"])


@settings(max_examples=200, deadline=None)
@given(
    dirs=st.lists(_segments, max_size=4),
    markers=st.lists(_markers, max_size=4).map(tuple),
    explicit=st.none() | _names,
)
def test_classify_follows_the_precedence(
    dirs: list[str], markers: tuple[str, ...], explicit: str | None
) -> None:
    path = "/".join([*dirs, "test_x.py"])
    suite = classify(facts(path, markers, explicit), RULES)
    names = known_suites(RULES)
    # An independent, step-by-step restatement of the documented order.
    if explicit is not None:
        expected = explicit
    elif any(m in names for m in markers):
        expected = next(m for m in markers if m in names)
    elif any(d in names for d in dirs):
        expected = next(d for d in reversed(dirs) if d in names)
    else:
        expected = next(
            (
                r.name
                for r in RULES
                if set(r.markers) & set(markers)
                or any(fnmatch.fnmatchcase(path, g) for g in r.paths)
            ),
            DEFAULT_SUITE,
        )
    assert suite == expected
    assert explicit is not None or suite in names
