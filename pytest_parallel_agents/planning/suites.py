"""Classify collected tests into suites and parse the ``agents_suites`` rule lines."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import final

__all__ = [
    "BUILTIN_SUITES",
    "DEFAULT_SUITE",
    "SuiteRule",
    "SuiteRuleError",
    "TestFacts",
    "classify",
    "known_suites",
    "parse_suite_rules",
    "suite_settings",
]

BUILTIN_SUITES: tuple[str, ...] = ("unit", "integration", "e2e", "performance", "security")
DEFAULT_SUITE = "unit"

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_SYNTAX_HINT = "expected 'NAME: rule ...'"


@final
class SuiteRuleError(ValueError):
    """A malformed ``agents_suites`` line; the message is one line quoting the rule."""


@final
@dataclass(frozen=True)
class SuiteRule:
    """One suite: how tests are routed to it and how its agent pool is sized."""

    name: str
    markers: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    exclusive: bool = False
    max_agents: int | None = None
    items: int | None = None

    def matches(self, markers: Sequence[str], path: str) -> bool:
        """True when a marker or a path glob of this rule applies (step 4 of classify)."""
        if any(marker in markers for marker in self.markers):
            return True
        return any(fnmatch.fnmatchcase(path, glob) for glob in self.paths)


def _error(line: str, reason: str) -> SuiteRuleError:
    # Quote the offending line so the user can find it in a multi-line ini value.
    return SuiteRuleError(f"agents_suites: line {line!r}: {reason}")


def _split_values(line: str, key: str, value: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in value.split(","))
    if not value or any(not part for part in values):
        raise _error(line, f"{key}= needs a comma-separated list without empty entries")
    return values


def _positive_int(line: str, key: str, value: str) -> int:
    # int() alone would accept "+3", " 3" or "3_000"; require plain digits.
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise _error(line, f"{key}= needs an integer >= 1, got {value!r}")
    return int(value)


def _parse_line(line: str) -> SuiteRule:
    name, colon, rest = line.partition(":")
    name = name.strip()
    if not colon or not _NAME_RE.match(name):
        raise _error(line, _SYNTAX_HINT)
    markers: list[str] = []
    paths: list[str] = []
    exclusive = False
    max_agents: int | None = None
    items: int | None = None
    for token in rest.split():
        key, eq, value = token.partition("=")
        if key == "exclusive" and not eq:
            exclusive = True
        elif key == "marker" and eq:
            markers.extend(_split_values(line, key, value))
        elif key == "path" and eq:
            paths.extend(_split_values(line, key, value))
        elif key == "max_agents" and eq:
            if max_agents is not None:
                raise _error(line, "max_agents= given twice")
            max_agents = _positive_int(line, key, value)
        elif key == "items" and eq:
            if items is not None:
                raise _error(line, "items= given twice")
            items = _positive_int(line, key, value)
        else:
            raise _error(
                line,
                f"unknown token {token!r} (known: marker=, path=, exclusive, max_agents=, items=)",
            )
    # Keep first-seen order but drop repeats, so "marker=a marker=a" is harmless.
    return SuiteRule(
        name=name,
        markers=tuple(dict.fromkeys(markers)),
        paths=tuple(dict.fromkeys(paths)),
        exclusive=exclusive,
        max_agents=max_agents,
        items=items,
    )


def parse_suite_rules(lines: Sequence[str]) -> tuple[SuiteRule, ...]:
    """Parse the ``agents_suites`` ini lines into rules, in the order given."""
    rules: list[SuiteRule] = []
    seen: set[str] = set()
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rule = _parse_line(line)
        if rule.name in seen:
            raise _error(line, f"suite {rule.name!r} is defined twice")
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)


def known_suites(rules: Sequence[SuiteRule], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Built-in suites, then rule names, then ``extra``, first-seen order, no duplicates."""
    names = dict.fromkeys(BUILTIN_SUITES)
    names.update(dict.fromkeys(rule.name for rule in rules))
    names.update(dict.fromkeys(extra))
    return tuple(names)


@functools.lru_cache(maxsize=8)
def _names(rules: tuple[SuiteRule, ...]) -> frozenset[str]:
    # classify() runs once per collected test, with the same rules every time.
    return frozenset(known_suites(rules))


@final
@dataclass(frozen=True)
class TestFacts:
    """What classify() needs to know about one collected test."""

    nodeid: str
    path: str
    markers: tuple[str, ...]
    explicit_suite: str | None
    __test__ = False  # not a test class, even though the name starts with "Test"


def classify(facts: TestFacts, rules: Sequence[SuiteRule]) -> str:
    """The suite a test belongs to.

    First match wins: the ``agents_suite`` marker, a marker named after a known
    suite, the deepest directory named after a known suite, the rules in order,
    and finally ``DEFAULT_SUITE``.
    """
    if facts.explicit_suite is not None:
        return facts.explicit_suite
    names = _names(tuple(rules))
    for marker in facts.markers:
        if marker in names:
            return marker
    # Only directories count: a file named "e2e.py" says nothing about its suite.
    directories = facts.path.split("/")[:-1]
    for directory in reversed(directories):
        if directory in names:
            return directory
    for rule in rules:
        if rule.matches(facts.markers, facts.path):
            return rule.name
    return DEFAULT_SUITE


def suite_settings(rules: Sequence[SuiteRule], name: str) -> SuiteRule:
    """The rule configuring ``name``, or a rule with default settings when none does."""
    for rule in rules:
        if rule.name == name:
            return rule
    return SuiteRule(name)
