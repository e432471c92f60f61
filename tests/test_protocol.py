"""The wire protocol: every message survives encode/decode; garbage is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.transport.protocol import (
    PROTOCOL_VERSION,
    AgentFailed,
    AgentFinished,
    AgentInterrupted,
    AgentReady,
    ChannelClosed,
    CoverageRequest,
    OutputForwarded,
    ProtocolError,
    ReturnTests,
    RunTests,
    Shutdown,
    StartSession,
    TestsReported,
    TestsReturned,
    WarningData,
    decode,
    encode,
)

WARNING = WarningData("boom", "builtins", "UserWarning", "/x/test_a.py", 3, "runtest", "a::b")

MESSAGES = [
    StartSession(
        protocol=PROTOCOL_VERSION,
        agent_id="unit-0",
        suite="unit",
        run_id="abc",
        total_agents=3,
        args=("-q", "tests"),
        invocation_dir="/work",
        sys_path=("/work", "/lib"),
        basetemp="/tmp/pytest-of-x/pytest-1/unit-0",
        tests=(0, 4),
        nodeids=("tests/test_a.py::test_x", "tests/data.abnf::"),
        files=("/work/tests/test_a.py",),
        forward_output=False,
        parent_pid=123,
        status_dir="/tmp/pytest-of-x/pytest-1/.agents",
        coverage=CoverageRequest(("mypkg",), True, "/work/.coveragerc", False, "/tmp/cov"),
    ),
    RunTests((1, 2, 3)),
    Shutdown(drop_pending=True),
    AgentReady(PROTOCOL_VERSION, 42, 10, (3,), "not collected"),
    TestsReported(
        (
            (1, ({"when": "call", "outcome": "failed"},), None, (WARNING,), 0.25),
            (
                2,
                (),
                (("t.py", 3, "test_x"), ("test_x", "t.py"), (("call", 0.1, 1.0, 1.1),)),
                (),
                0.1,
            ),
        )
    ),
    OutputForwarded("hello\n"),
    AgentFinished(0, 51200, (WARNING,), 0.5),
    AgentFailed("Traceback ..."),
    AgentInterrupted({"nodeid": "t.py::test_x", "longrepr": None}),
    AgentInterrupted(None),
    ReturnTests(((7,), (8, 9))),
    TestsReturned(((8, 9),)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: object) -> None:
    assert decode(encode(message)) == message  # type: ignore[arg-type]


def test_encoding_is_what_execnet_carries() -> None:
    wire = encode(MESSAGES[4])
    assert wire[0] == "TestsReported"
    assert isinstance(wire[1], bytes)  # bulk fields travel as one pickled blob
    assert encode(Shutdown(drop_pending=True)) == ("Shutdown", True)


def test_corrupt_blob_is_refused() -> None:
    with pytest.raises(ProtocolError, match=r"RunTests\.indices does not decode"):
        decode(("RunTests", b"not a pickle"))


@pytest.mark.parametrize(
    "data",
    [None, (), ("NoSuchMessage",), ("RunTests",), ("RunTests", (1,), "extra"), [1, 2], (3,)],
)
def test_garbage_is_refused(data: object) -> None:
    with pytest.raises(ProtocolError):
        decode(data)


def test_channel_closed_never_travels() -> None:
    with pytest.raises(ProtocolError):
        encode(ChannelClosed("gone"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=50))
def test_run_tests_round_trip_any_indices(indices: list[int]) -> None:
    message = RunTests(tuple(indices))
    assert decode(encode(message)) == message
