"""Each agent runs its tests in collection order, as a plain run does (issue 15 §1.2)."""

from __future__ import annotations

import json

import pytest
from helpers import compare, run, summary_counts

# One slow test, then ten that fail once a "late" test has run in the same process, then
# twelve late ones: a suite whose tests depend on what ran before them (a library caching a
# type, say). Sequentially, and under xdist's default, every process runs its share in
# collection order, so all pass.
ORDER_DEPENDENT = """
import time

import pytest

LATE_RAN = []


def test_slow():
    time.sleep(1.0)


@pytest.mark.parametrize("n", range(10))
def test_early(n):
    assert not LATE_RAN, "a later test ran before this one in this process"


@pytest.mark.parametrize("n", range(12))
def test_late(n):
    LATE_RAN.append(n)
"""


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.parametrize("durations", [False, True], ids=["no-durations", "durations"])
def test_agents_run_their_tests_in_collection_order(
    pytester: pytest.Pytester, start: str, durations: bool
) -> None:
    pytester.makepyfile(test_order=ORDER_DEPENDENT)
    args = ["--agents", "2", "--agents-start", start, "-p", "no:cacheprovider"]
    if durations:
        # Known durations used to run each agent's share longest first: late before early.
        nodeids = ["test_order.py::test_slow"]
        nodeids += [f"test_order.py::test_early[{n}]" for n in range(10)]
        nodeids += [f"test_order.py::test_late[{n}]" for n in range(12)]
        times = {nodeid: 0.001 for nodeid in nodeids} | {"test_order.py::test_slow": 1.0}
        times |= {f"test_order.py::test_late[{n}]": 0.01 for n in range(12)}
        pytester.path.joinpath(".test_durations").write_text(json.dumps(times))
    _plain, parallel = compare(pytester, agents_args=args)
    assert summary_counts(parallel) == {"passed": 23}


def test_longest_first_is_an_explicit_choice(pytester: pytest.Pytester) -> None:
    """``--agents-order longest-first`` still reorders (for order-independent suites)."""
    pytester.makepyfile(
        test_a="""
        import time
        def test_short():
            pass
        def test_long():
            time.sleep(0.2)
        """
    )
    pytester.path.joinpath(".test_durations").write_text(
        json.dumps({"test_a.py::test_short": 0.001, "test_a.py::test_long": 0.2})
    )
    result = run(
        pytester,
        "--agents",
        "2",
        "--agents-items",
        "1",
        "--agents-min-items",
        "1",
        "--agents-order",
        "longest-first",
        "-p",
        "no:cacheprovider",
    )
    assert summary_counts(result) == {"passed": 2}
    bad = run(pytester, "--agents", "2", "--agents-order", "random")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--agents-order expects collection or longest-first, got 'random'" in bad.stderr.str()
