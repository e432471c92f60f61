"""The controller↔agent protocol: small typed messages with one encode/decode."""

from __future__ import annotations

import dataclasses
import pickle
import sys
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, NoReturn, TypeAlias

# Bumped whenever a message or record gains, loses or changes a field; both sides check it at
# start-up. tests/unit/test_protocol.py holds the schema this number stands for.
PROTOCOL_VERSION: Final = 7

# A quiet agent sends AgentAlive this often; the controller's --agents-heartbeat must allow
# for a late one, so it is at least twice this.
HEARTBEAT_INTERVAL: Final = 1.0

# What execnet can carry: these builtins nested in tuples, lists and dicts.
Wire: TypeAlias = Any
SerializedReport: TypeAlias = dict[str, Any]


class ProtocolError(Exception):
    """A message that does not decode, or a peer speaking another protocol version."""


if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10

    def assert_never(value: NoReturn) -> NoReturn:
        """The final ``case _:`` of a ``match`` over a union (a message, a decision): a
        type checker reports any member no case handles."""
        raise AssertionError(f"unhandled: {value!r}")


# --- commands: controller → agent (imperative) -------------------------------------------


@dataclass(frozen=True)
class CoverageRequest:
    """How an agent measures coverage (SPEC §8), part of StartSession."""

    sources: tuple[str, ...]  # empty: the coverage configuration's own source setting
    branch: bool | None  # None: the configuration decides
    config_file: str | bool  # True: coverage's own search for a configuration file
    test_context: bool  # record "<node id>|<phase>" dynamic contexts
    # Where the agent writes its data file; every agent process writes its own file there.
    directory: str


@dataclass(frozen=True)
class StartSession:
    """First message to a new agent: who it is and which tests it may be asked to run."""

    protocol: int
    agent_id: str
    suite: str
    run_id: str
    total_agents: int
    args: tuple[str, ...]
    invocation_dir: str
    sys_path: tuple[str, ...]
    basetemp: str
    # Every test of the suite, by its index in the controller's items; RunTests uses these.
    tests: tuple[int, ...]
    # Their node ids, for an agent that collects for itself; empty for a forked agent,
    # which holds the controller's items already.
    nodeids: tuple[str, ...]
    # Files holding those tests; the agent skips collecting any other file.
    files: tuple[str, ...]
    forward_output: bool
    parent_pid: int
    # Where the agent keeps its scoreboard slot and faulthandler log (see scoreboard.py).
    status_dir: str
    coverage: CoverageRequest | None
    # Where the agent runs. A remote agent maps paths under the controller's rootdir to
    # host_root ("": the same paths, ".": where the gateway's chdir= put it) and keeps its
    # files (basetemp, slot, coverage) in host_dir ("": a temporary directory of its own).
    remote: bool = False
    rootdir: str = ""
    host_root: str = ""
    host_dir: str = ""
    # What the agent puts in ``config.workerinput`` (and PYTEST_XDIST_* variables), so that
    # plugins keying per-worker resources on pytest-xdist's worker id (pytest-django's test
    # database, say) give each agent its own; empty: no xdist identity.
    worker_input: tuple[tuple[str, Wire], ...] = ()
    # (test, times it killed an agent) for tests pytest-rerunfailures reruns: the agent tells
    # rerunfailures, which counts those attempts against the test's reruns, as it does on the
    # worker that reruns a crashed pytest-xdist worker's test.
    rerun_crashes: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class RunTests:
    """Append these tests (indices from StartSession.tests) to the agent's queue, in order."""

    indices: tuple[int, ...]


@dataclass(frozen=True)
class Shutdown:
    """No more tests will come: finish the queue (or drop it) and end the session."""

    drop_pending: bool


@dataclass(frozen=True)
class ReturnTests:
    """Give back those of these units (each a group of tests, whole) that are all still
    waiting in the queue, behind the next test: agents that ran dry will run them."""

    units: tuple[tuple[int, ...], ...]


Command: TypeAlias = StartSession | RunTests | Shutdown | ReturnTests


# --- events: agent → controller (past tense) ----------------------------------------------


@dataclass(frozen=True)
class AgentReady:
    """The agent collected its files; tests it could not find are listed with the reason."""

    protocol: int
    pid: int
    missing: tuple[int, ...]
    missing_reason: str
    host_root: str = ""  # a remote agent: where the rootdir's files are on its host


# The per-test records are NamedTuples, not dataclasses: a results batch is pickled as one
# blob (TestsReported.results), and a NamedTuple pickles as its fields plus its class, named
# once per blob. Unpickling a plain pass costs the controller about 1 µs more than bare
# tuples did; frozen dataclasses, which unpickle through __reduce__ and setattr, cost about
# twice that. Both ends read the fields by name.


class PhaseTimes(NamedTuple):
    """One phase of a plainly passing test: what its TestReport is rebuilt from."""

    when: str
    duration: float
    start: float
    stop: float


class CompactPass(NamedTuple):
    """A test whose phases all passed plainly (no output, no properties, nothing extra),
    instead of full reports: most tests are such, and full reports cost the controller more
    than the test itself."""

    location: tuple[str, int | None, str]
    keywords: tuple[str, ...]
    phases: tuple[PhaseTimes, ...]


class TestResult(NamedTuple):
    """One finished test."""

    test: int  # its index in the controller's items
    reports: tuple[SerializedReport, ...]  # full serialized reports; () when ``passed``
    passed: CompactPass | None
    warnings: tuple[WarningData, ...]
    busy: float  # seconds the test took in the agent (pytest_runtest_protocol)


TestResult.__test__ = False  # type: ignore[attr-defined]  # not a pytest test class


@dataclass(frozen=True)
class TestsReported:
    """Finished tests, in the order they finished."""

    results: tuple[TestResult, ...]
    __test__ = False  # not a pytest test class, despite its name


@dataclass(frozen=True)
class WarningData:
    """A warning raised in an agent, in a form that crosses the channel."""

    message: str
    category_module: str
    category_name: str
    filename: str
    lineno: int
    when: str
    nodeid: str


@dataclass(frozen=True)
class TestsReturned:
    """The units of a ReturnTests the agent gave back (removed from its queue, not run)."""

    units: tuple[tuple[int, ...], ...]
    __test__ = False  # not a pytest test class, despite its name


@dataclass(frozen=True)
class OutputForwarded:
    """Lines an agent printed to its stdout or stderr while not captured (``-s``)."""

    text: str


@dataclass(frozen=True)
class AgentAlive:
    """Heartbeat: sent when the agent has sent nothing else for a while."""


@dataclass(frozen=True)
class AgentFinished:
    """The agent's session ended normally; its last figures."""

    peak_rss_kb: int
    warnings: tuple[WarningData, ...]
    coverage_seconds: float  # spent saving coverage at test boundaries (0 without coverage)
    # A remote agent's coverage data files, (name, content): its file system is not ours.
    coverage_data: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class AgentFailed:
    """An internal error in the agent, outside any test."""

    traceback: str


@dataclass(frozen=True)
class SessionExited:
    """A test called ``pytest.exit()``: the whole run ends with its reason and code."""

    reason: str
    returncode: int | None


@dataclass(frozen=True)
class AgentInterrupted:
    """A KeyboardInterrupt reached the agent (Ctrl-C, or a test's own): the run ends as
    interrupted. ``report``: a serialized report whose longrepr says where the running test
    was (None when the agent was between tests)."""

    report: SerializedReport | None


@dataclass(frozen=True)
class ChannelClosed:
    """Synthesised by the transport when an agent's channel ends; never sent over the wire."""

    error: str


Event: TypeAlias = (
    AgentAlive
    | AgentReady
    | TestsReported
    | TestsReturned
    | OutputForwarded
    | AgentFinished
    | AgentFailed
    | SessionExited
    | AgentInterrupted
    | ChannelClosed
)

_MESSAGES: Final[tuple[type[Any], ...]] = (
    StartSession,
    RunTests,
    Shutdown,
    ReturnTests,
    AgentReady,
    TestsReported,
    TestsReturned,
    OutputForwarded,
    AgentAlive,
    AgentFinished,
    AgentFailed,
    SessionExited,
    AgentInterrupted,
)
_BY_TAG: Final = {cls.__name__: cls for cls in _MESSAGES}


# Fields carried as one pickled blob: execnet serialises nested builtins in pure Python,
# about 75 µs per test result for both ends together, pickle in about 2 µs. Both ends run
# this package (the classes unpickled here are its own), and an agent runs the controller's
# code already, so unpickling what it sends adds no trust.
_PICKLED: Final[dict[type[Any], frozenset[str]]] = {
    StartSession: frozenset({"args", "sys_path", "tests", "nodeids", "files", "coverage"}),
    RunTests: frozenset({"indices"}),
    TestsReported: frozenset({"results"}),
    AgentFinished: frozenset({"warnings", "coverage_data"}),
}


def encode(message: Command | Event) -> Wire:
    """Turn a message into what execnet carries: ``(tag, field values...)``."""
    if isinstance(message, ChannelClosed):
        raise ProtocolError("ChannelClosed is local to the controller and never sent")
    pickled = _PICKLED.get(type(message), frozenset())
    values = []
    for field in _fields(message):
        value = getattr(message, field.name)
        values.append(pickle.dumps(value, protocol=4) if field.name in pickled else value)
    return (type(message).__name__, *values)


def decode(data: Wire) -> Command | Event:
    """Inverse of :func:`encode`; raises ProtocolError on anything it does not know."""
    if not isinstance(data, tuple) or not data or not isinstance(data[0], str):
        raise ProtocolError(f"not a protocol message: {data!r:.200}")
    cls = _BY_TAG.get(data[0])
    if cls is None:
        raise ProtocolError(f"unknown message {data[0]!r}")
    values = list(data[1:])
    fields = dataclasses.fields(cls)
    if len(values) != len(fields):
        raise ProtocolError(f"{data[0]} carries {len(values)} fields, expected {len(fields)}")
    pickled = _PICKLED.get(cls, frozenset())
    for position, field in enumerate(fields):
        if field.name in pickled:
            try:
                values[position] = pickle.loads(values[position])
            except Exception as exc:
                raise ProtocolError(f"{data[0]}.{field.name} does not decode: {exc}") from None
    message: Command | Event = cls(*values)
    return message


def _fields(message: object) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(message)  # type: ignore[arg-type]
