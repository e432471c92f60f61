"""Every use of a private pytest, execnet, coverage or pytest-cov API, each explained."""

# Each function says what it uses, why no public API serves and the versions it holds for;
# tests/unit/test_compat.py checks each against the installed releases. Workarounds of upstream
# bugs have their report in docs/upstream.md. This module imports nothing of the plugin and,
# outside type checking, nothing but the standard library: transport may use it (and must
# not import pytest), only transport.gateways imports execnet (it passes the module in), and
# coverage is imported only when measuring (the caller holds the Coverage object).

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, TextIO, cast, final

if TYPE_CHECKING:
    import argparse

    import coverage
    import execnet
    import pytest
    from _pytest._io import TerminalWriter

# --- pytest: the terminal -------------------------------------------------------------------


def show_interrupt_at(config: pytest.Config, longrepr: object) -> bool:
    """Make the terminal's KeyboardInterrupt line name where an agent's test was.

    The controller's own interrupt happened in its event loop, so pytest's terminal would
    show a line in ``threading.py``; a plain run shows the running test's line. pytest keeps
    the interrupt's repr in ``TerminalReporter._keyboardinterrupt_memo`` (pytest 8 and 9),
    set by ``pytest_keyboard_interrupt`` and printed at ``pytest_sessionfinish``, with no
    public way to give another. False when that attribute is not there (nothing changed).
    """
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or getattr(terminal, "_keyboardinterrupt_memo", None) is None:
        return False
    if getattr(longrepr, "reprcrash", None) is None:
        return False
    terminal._keyboardinterrupt_memo = longrepr
    return True


def terminal_writer(terminal: object) -> TerminalWriter | None:
    """The terminal reporter's writer, or None where it cannot be redirected.

    ``TerminalReporter._tw`` (pytest 8 and 9) is the writer everything on the terminal goes
    through; the stream it writes to is ``TerminalWriter._file`` and the line it is on
    ``_current_line``. pytest has no public way to send a reporter's output elsewhere for a
    while, which batching replayed output and grouping progress per file need. None when
    any of the three is missing: the callers then write as pytest does, unbatched.
    """
    writer = getattr(terminal, "_tw", None)
    if not hasattr(writer, "_file") or not hasattr(writer, "_current_line"):
        return None
    return cast("TerminalWriter", writer)


def writer_stream(writer: TerminalWriter) -> TextIO:
    """Where a writer from ``terminal_writer`` writes (``TerminalWriter._file``)."""
    return writer._file


def set_writer_stream(writer: TerminalWriter, stream: TextIO) -> None:
    """Make a writer from ``terminal_writer`` write to ``stream`` (``TerminalWriter._file``)."""
    writer._file = stream


def writer_line(writer: TerminalWriter) -> str:
    """The text a writer has put on its current line (``TerminalWriter._current_line``),
    which its reporter measures to right-align the progress percentage."""
    return writer._current_line


def set_writer_line(writer: TerminalWriter, line: str) -> None:
    """Give a writer the line it believes it is on (``TerminalWriter._current_line``)."""
    writer._current_line = line


_PROGRESS_FILL: Final = (
    "_show_progress_info",
    "_is_last_item",
    "_write_progress_information_filling_space",
)


def can_fill_progress(terminal: pytest.TerminalReporter) -> bool:
    """Whether ``fill_progress`` can end a file's line as pytest does."""
    # Looked up without being evaluated: ``_is_last_item`` is a property that needs a session.
    found = getattr(terminal, "__dict__", {})
    return all(name in found or hasattr(type(terminal), name) for name in _PROGRESS_FILL)


def fill_progress(terminal: pytest.TerminalReporter) -> None:
    """End a file's progress line with its right-aligned ``[ 42%]``, as pytest does when the
    next test is in another file (not after the last test: pytest writes that one itself).

    ``TerminalReporter._write_progress_information_filling_space``, gated by
    ``_show_progress_info`` and ``_is_last_item`` (pytest 8 and 9): the reporter writes it
    from ``pytest_runtest_logstart`` of the next file's first test only; a line written later,
    when a file's last test came in from an agent, has no public way to get it.
    """
    if terminal._show_progress_info and not terminal._is_last_item:
        terminal._write_progress_information_filling_space()


# --- pytest: the session and its plugins ----------------------------------------------------

# What pytest's cacheprovider and stepwise modules register their cache writers as (pytest 8
# and 9; ``-p no:cacheprovider`` names modules, not these). A forked agent inherits them and
# must not write the cache: only the controller knows every test's outcome.
CACHE_WRITER_PLUGINS: Final = ("lfplugin", "nfplugin", "stepwiseplugin")

# The module of pytest's junit writer (``LogXML``), which is registered without a name, so
# it is found by its class's module (pytest 8 and 9); only the controller writes the XML.
JUNIT_XML_MODULE: Final = "_pytest.junitxml"

# The instance attributes of a TestReport that pytest's runner builds (pytest 8 keeps the
# node id as ``nodeid``, pytest 9 as ``_id``): a report with any other attribute (wasxfail,
# a plugin's) carries more than a plain pass. No public API lists them.
TEST_REPORT_ATTRIBUTES: Final = frozenset(
    {
        "nodeid",
        "_id",
        "location",
        "keywords",
        "outcome",
        "longrepr",
        "when",
        "user_properties",
        "sections",
        "duration",
        "start",
        "stop",
    }
)


def basetemp_factory(config: pytest.Config) -> pytest.TempPathFactory | None:
    """The session's ``tmp_path_factory`` outside a fixture, None without the tmpdir plugin.

    pytest keeps it as ``config._tmp_path_factory`` (pytest 8 and 9); the public way is the
    ``tmp_path_factory`` fixture, which the controller, planning before any test, cannot ask
    for. Its ``getbasetemp()`` is public.
    """
    return cast("pytest.TempPathFactory | None", getattr(config, "_tmp_path_factory", None))


def renew_tmp_path_factory(config: pytest.Config) -> None:
    """Give a forked agent a ``tmp_path_factory`` of its own, on the basetemp its options
    name now; nothing without the tmpdir plugin.

    The inherited factory is the controller's (and may have made its basetemp already).
    pytest builds it in ``pytest_configure``, which a forked agent does not run again, with
    ``TempPathFactory.from_config(config, _ispytest=True)`` into ``config._tmp_path_factory``
    (pytest 8 and 9); the constructor is private (``_ispytest``) and there is no public
    setter. The class is taken from the inherited factory: this module imports no pytest.
    """
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        fresh = type(factory).from_config(config, _ispytest=True)
        config._tmp_path_factory = fresh  # type: ignore[attr-defined]


def stop_global_capture(config: pytest.Config) -> bool:
    """Stop pytest's global capture (``CaptureManager.stop_global_capturing``); False when
    capture is off (``-p no:capture``).

    Every forked agent would share the controller's capture files (one file offset for all
    agents' output), so the controller stops its capture before forking. ``CaptureManager``
    (registered as ``"capturemanager"``, pytest 8 and 9) is not public; nothing else
    reaches the global capture.
    """
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        return False
    capture.stop_global_capturing()
    return True


def start_global_capture(config: pytest.Config) -> None:
    """Start pytest's global capture afresh, suspended as between tests
    (``CaptureManager.start_global_capturing`` and ``suspend_global_capture``): the
    controller after its forks, a forked agent with capture files of its own."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        capture.start_global_capturing()
        capture.suspend_global_capture()


def teardown_session(config: pytest.Config, session: pytest.Session) -> None:
    """Tear down what this process's tests set up and left standing (session fixtures).

    A forked agent must not run ``pytest_sessionfinish`` (the controller's plugins would undo
    the controller's setup under the other agents), only pytest's runner's: its
    ``pytest_sessionfinish`` (the plugin ``"runner"``, module ``_pytest.runner``, pytest 8
    and 9) runs ``session._setupstate.teardown_exact(None)``. No public API tears down.
    """
    runner = config.pluginmanager.get_plugin("runner")
    if runner is not None:
        runner.pytest_sessionfinish(session)


def restore_subtest_kwargs(report: object, data: Mapping[str, object]) -> None:
    """Undo the second repr of a deserialised subtest report's kwargs (``i='1'`` for ``i=1``).

    Works around a pytest bug (docs/upstream.md): ``SubtestContext`` reprs its kwargs when
    built, and ``SubtestReport._from_json`` builds it from kwargs that are reprs already.
    The serialised text is under the private key ``"_subtest.context"``, and the frozen
    dataclass takes it back only through ``object.__setattr__`` (pytest 9; pytest 8 has no
    subtests of its own, and pytest-subtests' context is not found here: nothing changes).
    """
    context = getattr(report, "context", None)
    serialised = data.get("_subtest.context")
    if context is None or not isinstance(serialised, dict):
        return
    kwargs = serialised.get("kwargs")
    if isinstance(kwargs, dict) and hasattr(context, "kwargs"):
        object.__setattr__(context, "kwargs", dict(kwargs))


class LiveHandler(Protocol):
    """What the plugin uses of pytest's live logging handler."""

    formatter: logging.Formatter | None
    emit: Callable[[logging.LogRecord], None]

    def set_when(self, when: str | None) -> None: ...

    def handle(self, record: logging.LogRecord) -> object: ...


def live_log_handler(config: pytest.Config) -> LiveHandler | None:
    """pytest's live logging handler, or None when live logging is off.

    pytest offers no public way to it: its LoggingPlugin (registered as ``"logging-plugin"``,
    pytest 8 and 9) keeps it in ``log_cli_handler``, a ``_LiveLoggingStreamHandler`` (a
    StreamHandler writing to the terminal reporter) when live logging is on, else a
    NullHandler; the plugin's hooks tell it the phase with its ``set_when()``. Should pytest
    rename any of it, this returns None and agents' live logging is simply not shown.
    """
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    handler = getattr(plugin, "log_cli_handler", None)
    if not isinstance(handler, logging.StreamHandler) or not hasattr(handler, "set_when"):
        return None
    return cast(LiveHandler, handler)


# --- execnet --------------------------------------------------------------------------------


def whole_writes(io: object) -> None:
    """Make an execnet pipe IO write the whole of every message, signals or not.

    Works around an execnet bug (docs/upstream.md): ``Popen2IO.write`` writes a message with
    one call to its stream's ``write`` and ignores the count; on an unbuffered pipe (a forked
    agent's, or the stdout of a ``python -u`` gateway) a signal handled mid-write (a test's
    SIGALRM, a debugger's stop) returns a short count, the rest of the message is lost, and
    the peer waits forever for bytes that never come. The loop replaces ``Popen2IO._write``
    (execnet 2.1). By attribute, not isinstance: a spawned or remote gateway runs execnet's
    classes from its bootstrap source, not from the execnet module. (Socket IO has no
    ``_write``: it uses ``sendall``.)
    """
    write_once = getattr(io, "_write", None)
    if write_once is None or getattr(io, "_writes_whole", False):
        return

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = write_once(view)
            view = view[written or 0 :]  # None: a non-blocking pipe is full; try again

    io._write = write  # type: ignore[attr-defined]
    io._writes_whole = True  # type: ignore[attr-defined]


def gateway_io(gateway: execnet.Gateway) -> object:
    """The IO object a gateway reads and writes its messages through (``Gateway._io``,
    execnet 2.1): what ``whole_writes`` fixes, from the agent's end of its channel."""
    return gateway._io


def gateway_process(gateway: execnet.Gateway) -> Any:
    """The local process of a gateway (``Popen``, or the ssh client's), None for a socket
    gateway: execnet keeps it as ``Gateway._io.popen`` (execnet 2.1), with no accessor."""
    return getattr(getattr(gateway, "_io", None), "popen", None)


def gateway_namespace(channel: object) -> dict[str, Any] | None:
    """The namespace a gateway's execnet code runs in, to tell its frames from a test's.

    A spawned agent runs execnet from source its bootstrap sent over (its frames say
    ``<string>``), in a namespace of its own: the globals of its channel class's methods
    (execnet 2.1). None where that is not a dict.
    """
    send = getattr(type(channel), "send", None)
    namespace = getattr(send, "__globals__", None)
    return namespace if isinstance(namespace, dict) else None


class _Process(Protocol):
    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


def gateway_over_pipes(
    execnet_module: ModuleType,
    group: execnet.Group,
    write_file: IO[bytes],
    read_file: IO[bytes],
    process: _Process,
    agent_id: str,
) -> execnet.Gateway:
    """The controller's gateway to a forked agent, over two unbuffered pipes, in ``group``.

    execnet makes gateways only by starting the process itself; a forked agent is already
    running. So this builds what ``makegateway`` would: a ``gateway_base.Popen2IO`` (not
    exported) over the pipes, waiting for and killing ``process`` where execnet's own
    popen IO waits for and kills its Popen (``Group.terminate`` calls ``_io.wait`` and
    ``_io.kill``), a ``Gateway(io, spec)`` (documented ``:private:``), registered with
    ``Group._register`` so that ``gateway.exit()`` and ``Group.terminate()`` handle it like
    any other (execnet 2.1). Its writes are whole (``whole_writes``).
    """
    io = execnet_module.gateway_base.Popen2IO(write_file, read_file, group.execmodel)
    io.popen = process  # where gateway_process finds it, as for a popen gateway
    io.wait = process.wait
    io.kill = process.kill
    whole_writes(io)
    gateway = execnet_module.Gateway(io, execnet_module.XSpec(f"popen//id={agent_id}"))
    group._register(gateway)
    return cast("execnet.Gateway", gateway)


def serve_over_pipes(
    execnet_module: ModuleType, write_file: IO[bytes], read_file: IO[bytes], agent_id: str
) -> None:
    """In a forked agent: serve an execnet gateway over two unbuffered pipes until it ends.

    What execnet's own popen bootstrap runs in a new interpreter (``gateway_base.serve`` on a
    ``gateway_base.Popen2IO``, with the ``"thread"`` execution model, execnet 2.1), none of it
    exported; the forked child already holds the session, so it starts no interpreter. The
    first thing the gateway runs, the bootstrap, makes its writes whole.
    """
    base = execnet_module.gateway_base
    io = base.Popen2IO(write_file, read_file, base.get_execmodel("thread"))
    base.serve(io, id=agent_id)


# --- coverage -------------------------------------------------------------------------------


def flush_coverage(cov: coverage.Coverage) -> None:
    """Write what ``cov`` measured since the last flush to its data file, cheaply.

    The collector's own ``flush_data`` (``Coverage._collector``, coverage 7) appends the new
    lines in one small transaction; the public ``get_data()`` does the same but also walks
    every source directory for unexecuted files, each time (a checkpoint runs between tests).
    ``get_data()`` where the collector or its method is gone.
    """
    collector = getattr(cov, "_collector", None)
    flush = getattr(collector, "flush_data", None)
    if callable(flush):
        flush()
    else:
        cov.get_data()


# --- pytest-cov -----------------------------------------------------------------------------


@final
@dataclass(frozen=True)
class PytestCovOptions:
    """pytest-cov's ``--cov*`` options as it parsed them."""

    sources: tuple[str | bool, ...]  # True: a bare --cov
    reports: dict[str, str | None]  # report type: its output, None for the default
    config_file: str
    fail_under: float | None
    context: str | None
    branch: bool | None
    append: bool
    skip_reports_on_failure: bool
    precision: int | None


def pytest_cov_options(namespace: argparse.Namespace) -> PytestCovOptions | None:
    """pytest-cov's options, or None when ``--cov`` was not given (or ``--no-cov`` was).

    With agents the controller measures for pytest-cov (it would measure the controller,
    which runs no tests), so it reads pytest-cov's options, which pytest-cov publishes only
    as the dests of its argparse options (``cov_source``, ``cov_report``, ..., pytest-cov 5
    to 7). Absent dests (pytest-cov not installed) read as not given.
    """
    sources = tuple(getattr(namespace, "cov_source", None) or ())
    if not sources or getattr(namespace, "no_cov", False):
        return None
    fail_under = getattr(namespace, "cov_fail_under", None)
    return PytestCovOptions(
        sources=sources,
        reports=dict(getattr(namespace, "cov_report", None) or {}),
        config_file=str(getattr(namespace, "cov_config", ".coveragerc") or ""),
        fail_under=float(fail_under) if fail_under is not None else None,
        context=getattr(namespace, "cov_context", None),
        branch=getattr(namespace, "cov_branch", None),
        append=bool(getattr(namespace, "cov_append", False)),
        skip_reports_on_failure=bool(getattr(namespace, "no_cov_on_fail", False)),
        precision=getattr(namespace, "cov_precision", None),
    )


def silence_pytest_cov(config: pytest.Config, namespace: argparse.Namespace) -> None:
    """Keep pytest-cov from measuring and reporting this process.

    pytest-cov decides in its ``pytest_load_initial_conftests`` from the early namespace's
    ``cov_source`` and later reads ``config.option.cov_source`` (pytest-cov 5 to 7); it has
    no option or hook to stand aside for another plugin, so both go empty.
    """
    namespace.cov_source = []
    if hasattr(config.option, "cov_source"):
        config.option.cov_source = []
