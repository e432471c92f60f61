"""The durations file: pytest-split's format in, merged and atomic out, bad files untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_parallel_agents.artifacts.durations import (
    DurationsError,
    parse_durations,
    predict,
    read_durations,
    store_durations,
)


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_durations(tmp_path / ".test_durations") == {}


def test_reads_object_and_legacy_list(tmp_path: Path) -> None:
    assert parse_durations('{"a::b": 1.5, "c": 0}', "x") == {"a::b": 1.5, "c": 0.0}
    assert parse_durations('[["a::b", 2]]', "x") == {"a::b": 2.0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('"x"', "must hold a JSON object"),
        ('{"a": "slow"}', "entry 'a' is 'slow'"),
        ('{"a": -1}', "expected a number of seconds >= 0"),
        ('{"a": true}', "expected a number"),
    ],
)
def test_bad_content_names_the_file(text: str, expected: str) -> None:
    with pytest.raises(
        DurationsError, match=re.escape("durations file my/.test_durations")
    ) as info:
        parse_durations(text, "my/.test_durations")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_predict_uses_mean_for_unknown() -> None:
    seconds, known = predict(["a", "b", "c"], {"a": 1.0, "b": 3.0})
    assert known
    assert seconds == [1.0, 3.0, 2.0]


def test_predict_without_any_record_says_so() -> None:
    seconds, known = predict(["a", "b"], {"z": 9.0})
    assert not known
    assert seconds == [1.0, 1.0]


def test_store_merges_and_keeps_others(tmp_path: Path) -> None:
    path = tmp_path / ".test_durations"
    path.write_text(json.dumps({"old": 1.0, "a": 5.0}))
    store_durations(path, {"a": 0.5, "new": 2.0})
    assert json.loads(path.read_text()) == {"a": 0.5, "new": 2.0, "old": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == [".test_durations"]


def test_store_never_overwrites_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / ".test_durations"
    path.write_text("{not json")
    with pytest.raises(DurationsError):
        store_durations(path, {"a": 1.0})
    assert path.read_text() == "{not json"
