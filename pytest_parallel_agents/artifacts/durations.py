"""The durations file (pytest-split's ``{nodeid: seconds}`` JSON): read, predict, store."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from pytest_parallel_agents.files import write_atomically


class DurationsError(Exception):
    """A durations file that cannot be read or written; one line naming the file."""


def read_durations(path: Path) -> dict[str, float]:
    """The recorded seconds per node id; empty when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise DurationsError(f"cannot read durations file {path}: {exc}") from None
    return parse_durations(text, str(path))


def parse_durations(text: str, source: str) -> dict[str, float]:
    """Parse the JSON text of a durations file; ``source`` names it in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DurationsError(
            f"durations file {source} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}"
        ) from None
    # pytest-split's older format: a list of [nodeid, seconds] pairs.
    if isinstance(data, list) and all(isinstance(p, list) and len(p) == 2 for p in data):
        data = dict(data)
    if not isinstance(data, dict):
        raise DurationsError(
            f"durations file {source} must hold a JSON object {{nodeid: seconds}}, "
            f"found {type(data).__name__}"
        )
    result: dict[str, float] = {}
    for nodeid, seconds in data.items():
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise DurationsError(
                f"durations file {source}: entry {nodeid!r} is {seconds!r}, "
                "expected a number of seconds >= 0"
            )
        result[str(nodeid)] = float(seconds)
    return result


def predict(nodeids: Iterable[str], known: Mapping[str, float]) -> tuple[list[float], bool]:
    """Seconds per test: recorded, else the mean of the recorded ones of these tests.

    The flag is False when none of these tests has a record: the figures are then
    placeholders of equal weight, not predictions.
    """
    ids = list(nodeids)
    recorded = [known[n] for n in ids if n in known]
    if not recorded:
        return [1.0] * len(ids), False
    mean = sum(recorded) / len(recorded)
    return [known.get(n, mean) for n in ids], True


# Where each run's figures are kept for the next run's schedule, in pytest's cache.
CACHE_KEY = "parallel_agents/durations"
# Past this many entries the cache keeps only the last run's: tests renamed or deleted long
# ago should not make every run read and write an ever larger file.
CACHE_LIMIT = 200_000


def from_cache(value: object) -> dict[str, float]:
    """The cached figures that make sense; the rest is dropped, not reported.

    The cache entry is the plugin's own, not something a user wrote: a damaged one costs
    only the schedule of one run, so it is not worth an error.
    """
    if not isinstance(value, dict):
        return {}
    return {
        str(nodeid): float(seconds)
        for nodeid, seconds in value.items()
        if isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and seconds >= 0
    }


def cache_update(
    previous: Mapping[str, float], measured: Mapping[str, float], limit: int = CACHE_LIMIT
) -> dict[str, float]:
    """This run's figures over the previous ones (tests not run this time keep theirs)."""
    latest = {nodeid: round(seconds, 6) for nodeid, seconds in measured.items()}
    merged = {**previous, **latest}
    return latest if len(merged) > limit else merged


def store_durations(path: Path, measured: Mapping[str, float]) -> None:
    """Merge ``measured`` into the file under a lock, atomically; never clobber a bad file."""
    from filelock import FileLock, Timeout  # only runs that store durations pay for it

    # The lock lives outside the user's tree, keyed by the file's absolute path.
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    lock = FileLock(os.path.join(tempfile.gettempdir(), f"pytest-agents-durations-{key}.lock"))
    try:
        with lock.acquire(timeout=30):
            merged = read_durations(path)  # raises, leaving the file alone, if it is corrupt
            merged.update({k: round(v, 6) for k, v in measured.items()})
            write_atomically(path, json.dumps(dict(sorted(merged.items())), indent=2) + "\n")
    except Timeout:
        raise DurationsError(f"durations file {path}: could not lock it within 30 s") from None
    except OSError as exc:
        raise DurationsError(f"cannot write durations file {path}: {exc}") from None
