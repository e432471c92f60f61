"""Duration-balanced CI shards: the same split on every job, whatever the collection order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import final

from pytest_parallel_agents.planning.lpt import lpt


class ShardError(ValueError):
    """A malformed or out-of-range shard; the message is one line."""


@final
@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``, and where that came from."""

    index: int
    count: int
    source: str = "--agents-shard"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N."""
    raw = text.strip()
    head, sep, tail = raw.partition("/")
    if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
        raise ShardError(f"--agents-shard expects K/N (e.g. 2/4) or auto, got {text!r}")
    return _checked(int(head), int(tail), "--agents-shard", one_based=True)


# CI variables: (index variable, total variable, 1-based?, name), first set pair wins.
_CI_VARIABLES: tuple[tuple[str, str, bool, str], ...] = (
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", True, "GitLab"),
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", False, "CircleCI"),
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", False, "Buildkite"),
    ("SYSTEM_JOBPOSITIONINPHASE", "SYSTEM_TOTALJOBSINPHASE", True, "Azure Pipelines"),
)


def shard_from_ci(env: Mapping[str, str]) -> Shard | None:
    """The shard the CI environment names, or None where no CI variables are set."""
    for index_var, total_var, one_based, name in _CI_VARIABLES:
        if index_var in env and total_var in env:
            return _from_variables(env, index_var, total_var, one_based, name)
    return None


def shard_from_bazel(env: Mapping[str, str]) -> Shard | None:
    """Bazel's TEST_SHARD_INDEX/TEST_TOTAL_SHARDS (0-based), which a test runner must obey."""
    if "TEST_TOTAL_SHARDS" not in env:
        return None
    return _from_variables(env, "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS", False, "Bazel")


def _from_variables(
    env: Mapping[str, str], index_var: str, total_var: str, one_based: bool, name: str
) -> Shard:
    index, total = env.get(index_var, "").strip(), env.get(total_var, "").strip()
    if not index.isdigit() or not total.isdigit():
        raise ShardError(
            f"{name} shard variables {index_var}={index!r} {total_var}={total!r} are not numbers"
        )
    source = f"{name} ({index_var}/{total_var})"
    return _checked(int(index) + (0 if one_based else 1), int(total), source, one_based)


def _checked(index: int, count: int, source: str, one_based: bool) -> Shard:
    if count < 1:
        raise ShardError(f"{source}: the shard count must be at least 1, got {count}")
    if not 1 <= index <= count:
        shown = index if one_based else index - 1
        first, last = (1, count) if one_based else (0, count - 1)
        raise ShardError(f"{source}: shard {shown} is out of range {first}..{last}")
    return Shard(index, count, source)


def split(weights: Mapping[str, float], count: int) -> list[list[str]]:
    """Split keys into ``count`` shards of near-equal weight, longest first into the lightest.

    Depends only on the keys and weights, never on their order, so every CI job computes the
    same split. Each shard lists its keys sorted. The heaviest shard is within LPT's bound:
    at most the mean load plus the heaviest key.
    """
    # Sorted keys: equal weights then go in key order, whatever order the mapping has.
    return [sorted(keys) for keys in lpt(sorted(weights), weights.__getitem__, count)]


def shard_loads(shards: Sequence[Sequence[str]], weights: Mapping[str, float]) -> list[float]:
    """Predicted seconds of each shard."""
    return [sum(weights[key] for key in keys) for keys in shards]
