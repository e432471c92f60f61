"""CI shards: parsing, CI variables, and a split that is exact, balanced and order-free;
the one LPT that the split and the suite queue share."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.planning.lpt import lpt
from pytest_parallel_agents.planning.sharding import (
    Shard,
    ShardError,
    parse_shard,
    shard_from_bazel,
    shard_from_ci,
    shard_loads,
    split,
)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 4/4 ", (4, 4))]
)
def test_parse(text: str, expected: tuple[int, int]) -> None:
    shard = parse_shard(text)
    assert (shard.index, shard.count) == expected


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "2", "2/", "-1/3", "1/2/3"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ShardError) as info:
        parse_shard(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, (1, 3)),
        ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "3"}, (1, 3)),
        ({"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "3"}, (3, 3)),
        ({"SYSTEM_JOBPOSITIONINPHASE": "2", "SYSTEM_TOTALJOBSINPHASE": "2"}, (2, 2)),
    ],
)
def test_ci_variables(env: dict[str, str], expected: tuple[int, int]) -> None:
    shard = shard_from_ci(env)
    assert shard is not None
    assert (shard.index, shard.count) == expected


def test_no_ci_means_everything() -> None:
    assert shard_from_ci({"CI": "true"}) is None
    assert shard_from_bazel({}) is None


def test_ci_out_of_range_names_the_variables() -> None:
    with pytest.raises(ShardError, match=r"CircleCI .*shard 3 is out of range 0\.\.2"):
        shard_from_ci({"CIRCLE_NODE_INDEX": "3", "CIRCLE_NODE_TOTAL": "3"})
    with pytest.raises(ShardError, match="not numbers"):
        shard_from_ci({"CI_NODE_INDEX": "x", "CI_NODE_TOTAL": "3"})


def test_bazel_is_zero_based() -> None:
    assert shard_from_bazel({"TEST_SHARD_INDEX": "0", "TEST_TOTAL_SHARDS": "2"}) == Shard(
        1, 2, "Bazel (TEST_SHARD_INDEX/TEST_TOTAL_SHARDS)"
    )


weights_strategy = st.dictionaries(
    st.text(min_size=1, max_size=12), st.floats(min_value=0, max_value=100), max_size=60
)


@settings(max_examples=200, deadline=None)
@given(weights_strategy, st.integers(min_value=1, max_value=8), st.randoms(use_true_random=False))
def test_split_partitions_balances_and_ignores_order(
    weights: dict[str, float], count: int, rnd: random.Random
) -> None:
    shards = split(weights, count)
    assert len(shards) == count
    flat = [key for shard in shards for key in shard]
    assert sorted(flat) == sorted(weights)  # every key exactly once
    items = list(weights.items())
    rnd.shuffle(items)
    assert split(dict(items), count) == shards  # independent of input order
    if weights:
        loads = shard_loads(shards, weights)
        bound = sum(weights.values()) / count + max(weights.values())
        assert max(loads) <= bound + 1e-9


def test_split_of_many_equal_tests_is_even() -> None:
    weights = {f"t{i}": 1.0 for i in range(300)}
    loads = shard_loads(split(weights, 3), weights)
    assert loads == [100.0, 100.0, 100.0]


def test_lpt_heaviest_first_to_the_least_loaded_bin_ties_in_input_order() -> None:
    weights = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 3.0, "e": 1.0}
    # b, then c and d (in input order) to the two other bins, then a and e to the lightest.
    assert lpt(list(weights), weights.__getitem__, 3) == [["b"], ["c", "a"], ["d", "e"]]
    assert lpt([], weights.__getitem__, 2) == [[], []]
    with pytest.raises(ValueError, match="count must be >= 1"):
        lpt(list(weights), weights.__getitem__, 0)
