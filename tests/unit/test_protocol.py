"""The wire protocol: every message survives encode/decode; garbage is refused; the schema
is the one PROTOCOL_VERSION stands for."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parallel_agents.transport import protocol
from pytest_parallel_agents.transport.protocol import (
    PROTOCOL_VERSION,
    AgentFailed,
    AgentFinished,
    AgentInterrupted,
    AgentReady,
    ChannelClosed,
    CompactPass,
    CoverageRequest,
    OutputForwarded,
    PhaseTimes,
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
    AgentReady(PROTOCOL_VERSION, 42, (3,), "not collected"),
    TestsReported(
        (
            protocol.TestResult(
                1, ({"when": "call", "outcome": "failed"},), None, (WARNING,), 0.25
            ),
            protocol.TestResult(
                test=2,
                reports=(),
                passed=CompactPass(
                    ("t.py", 3, "test_x"), ("test_x", "t.py"), (PhaseTimes("call", 0.1, 1.0, 1.1),)
                ),
                warnings=(),
                busy=0.1,
            ),
        )
    ),
    OutputForwarded("hello\n"),
    AgentFinished(51200, (WARNING,), 0.5),
    AgentFailed("Traceback ..."),
    AgentInterrupted({"nodeid": "t.py::test_x", "longrepr": None}),
    AgentInterrupted(None),
    ReturnTests(((7,), (8, 9))),
    TestsReturned(((8, 9),)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: object) -> None:
    assert decode(encode(message)) == message  # type: ignore[arg-type]


def test_records_come_back_as_records() -> None:
    reported = MESSAGES[4]
    assert isinstance(reported, TestsReported)
    decoded = decode(encode(reported))
    assert isinstance(decoded, TestsReported)
    failed, passed = decoded.results
    assert type(failed) is protocol.TestResult
    assert type(passed.passed) is CompactPass
    assert type(passed.passed.phases[0]) is PhaseTimes


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


# --- the wire schema ---------------------------------------------------------------------

SCHEMA_FILE = Path(__file__).parent / f"protocol_schema_v{PROTOCOL_VERSION}.txt"


def wire_schema() -> str:
    """Every message and record protocol.py defines, with its fields and their annotations in
    order (a field pickled into the message's blob marked so): what both ends must agree on."""
    lines = []
    for name, cls in vars(protocol).items():
        if not isinstance(cls, type) or cls.__module__ != protocol.__name__:
            continue
        if cls is ChannelClosed:
            continue  # local to the controller, never on the wire
        if dataclasses.is_dataclass(cls):
            pickled = protocol._PICKLED.get(cls, frozenset())
            fields = [
                (f.name, f.type, " (pickled)" if f.name in pickled else "")
                for f in dataclasses.fields(cls)
            ]
        elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
            fields = [(f, _text(cls.__annotations__[f]), "") for f in cls._fields]
        else:
            continue  # ProtocolError
        lines.append(name)
        lines.extend(f"    {field}: {annotation}{mark}" for field, annotation, mark in fields)
    return "\n".join(lines) + "\n"


def _text(annotation: object) -> str:
    """A NamedTuple's annotation as written (typing holds it as a ForwardRef)."""
    if isinstance(annotation, str):
        return annotation
    return str(getattr(annotation, "__forward_arg__", annotation))


def test_wire_schema_is_the_one_protocol_version_stands_for() -> None:
    schema = wire_schema()
    advice = (
        "The wire schema changed: bump PROTOCOL_VERSION in transport/protocol.py and, in the "
        f"same change, write the schema below as tests/protocol_schema_v<new version>.txt "
        f"(removing {SCHEMA_FILE.name}), so agents and controllers of different code refuse "
        f"each other instead of misreading fields.\n\n{schema}"
    )
    assert SCHEMA_FILE.exists(), (
        f"no snapshot for PROTOCOL_VERSION {PROTOCOL_VERSION}: write {SCHEMA_FILE.name} "
        f"with this schema (and remove the previous version's):\n\n{schema}"
    )
    assert schema == SCHEMA_FILE.read_text(), advice


def test_every_message_is_in_the_schema() -> None:
    schema = wire_schema()
    for cls in protocol._MESSAGES:
        assert f"\n{cls.__name__}\n" in f"\n{schema}"
