"""Each private API compat.py relies on, checked against the installed pytest, execnet, coverage."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import execnet
import pytest
from execnet import gateway_base
from helpers import QUIET_PLUGINS

from pytest_parallel_agents import compat
from pytest_parallel_agents.transport.gateways import ForkedProcess

# Inner runs: pytest alone, as the private APIs are pytest's, not this plugin's.
INNER: tuple[str, ...] = (*QUIET_PLUGINS, "-p", "no:parallel_agents")
PYTEST_9 = int(pytest.__version__.split(".")[0]) >= 9


def _gone(function: str, what: str) -> str:
    """The failure message: which compat function lost which upstream API."""
    versions = f"pytest {pytest.__version__}, execnet {execnet.__version__}"
    return f"compat.{function}: {what} ({versions}); its docstring says what it needs"


def _terminal(config: pytest.Config) -> pytest.TerminalReporter:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    assert terminal is not None
    return terminal  # type: ignore[no-any-return]


# --- pytest: the terminal ---------------------------------------------------------------------


def test_show_interrupt_at(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from pytest_parallel_agents.compat import show_interrupt_at

        def where_the_agent_was():
            raise KeyboardInterrupt

        def pytest_sessionfinish(session):
            try:
                where_the_agent_was()
            except KeyboardInterrupt as exc:
                longrepr = pytest.ExceptionInfo.from_exception(exc).getrepr()
            print("shown:", show_interrupt_at(session.config, longrepr))
        """
    )
    pytester.makepyfile("def test_stop():\n    raise KeyboardInterrupt\n")
    result = pytester.runpytest(*INNER, no_reraise_ctrlc=True)
    assert "shown: True" in result.stdout.str(), _gone(
        "show_interrupt_at", "TerminalReporter._keyboardinterrupt_memo is not set"
    )
    result.stdout.fnmatch_lines(["*conftest.py:5: KeyboardInterrupt"])


def test_terminal_writer(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure(*INNER)
    writer = compat.terminal_writer(_terminal(config))
    assert writer is not None, _gone(
        "terminal_writer", "TerminalReporter._tw, or its _file or _current_line, is gone"
    )
    assert writer is config.get_terminal_writer()
    assert compat.terminal_writer(object()) is None


def test_writer_stream_and_set_writer_stream(pytester: pytest.Pytester) -> None:
    terminal = _terminal(pytester.parseconfigure(*INNER))
    writer = compat.terminal_writer(terminal)
    assert writer is not None
    stream = compat.writer_stream(writer)
    gathered = io.StringIO()
    compat.set_writer_stream(writer, gathered)
    try:
        terminal.write("redirected")
    finally:
        compat.set_writer_stream(writer, stream)
    assert compat.writer_stream(writer) is stream
    assert gathered.getvalue() == "redirected", _gone(
        "set_writer_stream", "TerminalWriter no longer writes to its _file"
    )


def test_writer_line_and_set_writer_line(pytester: pytest.Pytester) -> None:
    terminal = _terminal(pytester.parseconfigure(*INNER))
    writer = compat.terminal_writer(terminal)
    assert writer is not None
    stream = compat.writer_stream(writer)
    compat.set_writer_stream(writer, io.StringIO())
    try:
        compat.set_writer_line(writer, "")
        writer.write("tests/test_x.py ..")
        assert compat.writer_line(writer) == "tests/test_x.py ..", _gone(
            "writer_line", "TerminalWriter no longer keeps its line as _current_line"
        )
        compat.set_writer_line(writer, "x" * 12)
        assert writer.width_of_current_line == 12, _gone(
            "set_writer_line", "TerminalWriter measures its line elsewhere"
        )
    finally:
        compat.set_writer_stream(writer, stream)


def test_can_fill_progress(pytester: pytest.Pytester) -> None:
    terminal = _terminal(pytester.parseconfigure(*INNER))
    assert compat.can_fill_progress(terminal), _gone(
        "can_fill_progress", "a TerminalReporter progress attribute is gone"
    )
    assert not compat.can_fill_progress(object())  # type: ignore[arg-type]


def test_fill_progress(pytester: pytest.Pytester) -> None:
    """After each test: the percentage pytest ends a file's line with, but not after the last
    (pytest writes that one after the test loop)."""
    pytester.makeconftest(
        """
        import io
        from pytest_parallel_agents import compat

        configs = []

        def pytest_configure(config):
            configs.append(config)

        def pytest_runtest_logfinish(nodeid):
            terminal = configs[0].pluginmanager.get_plugin("terminalreporter")
            writer = compat.terminal_writer(terminal)
            stream = compat.writer_stream(writer)
            gathered = io.StringIO()
            compat.set_writer_stream(writer, gathered)
            try:
                compat.fill_progress(terminal)
            finally:
                compat.set_writer_stream(writer, stream)
            with open("fills.txt", "a") as out:
                out.write(repr(gathered.getvalue().strip()) + "\\n")
        """
    )
    pytester.makepyfile(test_a="def test_1(): pass\ndef test_2(): pass\n")
    pytester.makepyfile(test_b="def test_3(): pass\n")
    pytester.runpytest(*INNER).assert_outcomes(passed=3)
    fills = (pytester.path / "fills.txt").read_text().splitlines()
    assert fills == ["'[ 33%]'", "'[ 66%]'", "''"], _gone("fill_progress", f"wrote {fills}")


# --- pytest: the session and its plugins ------------------------------------------------------


def test_cache_writer_plugins(pytester: pytest.Pytester) -> None:
    manager = pytester.parseconfigure(*INNER, "--sw").pluginmanager
    missing = [name for name in compat.CACHE_WRITER_PLUGINS if manager.get_plugin(name) is None]
    assert not missing, _gone("CACHE_WRITER_PLUGINS", f"pytest registers no {missing}")


def test_junit_xml_module(pytester: pytest.Pytester) -> None:
    manager = pytester.parseconfigure(*INNER, "--junitxml=out.xml").pluginmanager
    modules = {type(plugin).__module__ for plugin in manager.get_plugins()}
    assert compat.JUNIT_XML_MODULE in modules, _gone(
        "JUNIT_XML_MODULE", "the junit writer's class lives elsewhere"
    )


def test_test_report_attributes(pytester: pytest.Pytester) -> None:
    recorder = pytester.inline_runsource("def test_ok():\n    pass\n", *INNER)
    reports = recorder.getreports("pytest_runtest_logreport")
    assert [r.when for r in reports] == ["setup", "call", "teardown"]
    for report in reports:
        attributes = set(vars(report))
        assert "outcome" in attributes
        extra = sorted(attributes - compat.TEST_REPORT_ATTRIBUTES)
        assert not extra, _gone(
            "TEST_REPORT_ATTRIBUTES", f"a plain TestReport also has {extra}: none is compact"
        )


def test_basetemp_factory(pytester: pytest.Pytester, tmp_path: Path) -> None:
    config = pytester.parseconfigure(*INNER, f"--basetemp={tmp_path / 'base'}")
    factory = compat.basetemp_factory(config)
    assert isinstance(factory, pytest.TempPathFactory), _gone(
        "basetemp_factory", "config._tmp_path_factory is gone"
    )
    assert factory.getbasetemp() == (tmp_path / "base").resolve()
    assert compat.basetemp_factory(pytester.parseconfigure(*INNER, "-p", "no:tmpdir")) is None


def test_renew_tmp_path_factory(pytester: pytest.Pytester, tmp_path: Path) -> None:
    config = pytester.parseconfigure(*INNER, f"--basetemp={tmp_path / 'controller'}")
    inherited = compat.basetemp_factory(config)
    config.option.basetemp = str(tmp_path / "agent")
    compat.renew_tmp_path_factory(config)
    renewed = compat.basetemp_factory(config)
    assert renewed is not None and renewed is not inherited
    assert renewed.getbasetemp() == (tmp_path / "agent").resolve(), _gone(
        "renew_tmp_path_factory", "TempPathFactory.from_config ignores the new basetemp"
    )


def test_stop_global_capture(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure(*INNER, "--capture=sys")
    capture = config.pluginmanager.get_plugin("capturemanager")
    assert compat.stop_global_capture(config), _gone(
        "stop_global_capture", 'no "capturemanager" plugin'
    )
    with pytest.raises(AssertionError):
        capture.read_global_capture()  # nothing to read: stopped
    compat.start_global_capture(config)  # as the controller does after its forks
    assert not compat.stop_global_capture(pytester.parseconfigure(*INNER, "-p", "no:capture"))


def test_start_global_capture(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure(*INNER, "--capture=sys")
    capture = config.pluginmanager.get_plugin("capturemanager")
    compat.stop_global_capture(config)
    compat.start_global_capture(config)
    # Suspended, as between tests: what is printed now is not captured, once resumed it is.
    print("between tests")
    capture.resume_global_capture()
    print("in a test")
    capture.suspend_global_capture()
    out, _ = capture.read_global_capture()
    assert out == "in a test\n", _gone("start_global_capture", f"captured {out!r}")


def test_teardown_session(pytester: pytest.Pytester) -> None:
    """An agent runs its last test holding a next one (nothing scoped torn down), then
    tears down what is left, as a forked agent does at its end."""
    pytester.makeconftest(
        """
        import pytest
        from pytest_parallel_agents import compat

        events = []

        @pytest.fixture(scope="session")
        def resource():
            events.append("up")
            yield
            events.append("down")

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtestloop(session):
            item = session.items[0]
            item.ihook.pytest_runtest_protocol(item=item, nextitem=item)
            before = list(events)
            compat.teardown_session(session.config, session)
            print(f"EVENTS {before} {events}")
            return True
        """
    )
    pytester.makepyfile("def test_one(resource):\n    pass\n")
    result = pytester.runpytest(*INNER, "-s")
    assert "EVENTS ['up'] ['up', 'down']" in result.stdout.str(), _gone(
        "teardown_session", 'the "runner" plugin\'s pytest_sessionfinish tore nothing down'
    )


@pytest.mark.skipif(not PYTEST_9, reason="pytest 8 has no subtests of its own")
def test_restore_subtest_kwargs(pytester: pytest.Pytester) -> None:
    original, data, rebuilt = _subtest_report_round_trip(pytester)
    compat.restore_subtest_kwargs(rebuilt, data)
    assert rebuilt.context.kwargs == original.context.kwargs == {"i": "1"}, _gone(
        "restore_subtest_kwargs", 'no "_subtest.context" in the serialised report'
    )


@pytest.mark.skipif(not PYTEST_9, reason="pytest 8 has no subtests of its own")
def test_pytest_still_reprs_subtest_kwargs_twice(pytester: pytest.Pytester) -> None:
    """The bug restore_subtest_kwargs works around (docs/upstream.md). Once pytest fixes it,
    this fails: the workaround and its report can go."""
    _, _, rebuilt = _subtest_report_round_trip(pytester)
    assert rebuilt.context.kwargs == {"i": "'1'"}


def _subtest_report_round_trip(pytester: pytest.Pytester) -> tuple[Any, dict[str, Any], Any]:
    source = """
        def test_sub(subtests):
            with subtests.test(msg="sub", i=1):
                assert False
    """
    recorder = pytester.inline_runsource(textwrap.dedent(source), *INNER)
    reports = [r for r in recorder.getreports("pytest_runtest_logreport") if hasattr(r, "context")]
    assert reports, "no subtest report"
    config = pytester.parseconfigure(*INNER)
    data = config.hook.pytest_report_to_serializable(config=config, report=reports[0])
    rebuilt = config.hook.pytest_report_from_serializable(config=config, data=data)
    return reports[0], data, rebuilt


def test_live_log_handler(pytester: pytest.Pytester) -> None:
    assert compat.live_log_handler(pytester.parseconfigure(*INNER)) is None  # live logging off
    config = pytester.parseconfigure(*INNER, "-o", "log_cli=true")
    handler = compat.live_log_handler(config)
    assert handler is not None, _gone(
        "live_log_handler", 'no LoggingPlugin.log_cli_handler with set_when on "logging-plugin"'
    )
    writer = compat.terminal_writer(_terminal(config))
    assert writer is not None
    stream = compat.writer_stream(writer)
    gathered = io.StringIO()
    compat.set_writer_stream(writer, gathered)
    try:
        handler.set_when("call")
        handler.handle(logging.makeLogRecord({"msg": "hello", "levelno": 30, "levelname": "W"}))
    finally:
        compat.set_writer_stream(writer, stream)
    assert "live log call" in gathered.getvalue() and "hello" in gathered.getvalue()


# --- execnet ----------------------------------------------------------------------------------


class _ShortWrites:
    """An unbuffered stream cut short by a signal, every time: three bytes per write."""

    def __init__(self) -> None:
        self.received = bytearray()

    def write(self, data: bytes) -> int:
        self.received += bytes(data[:3])
        return min(3, len(data))

    def flush(self) -> None:
        pass


def test_whole_writes() -> None:
    plain_stream, whole_stream = _ShortWrites(), _ShortWrites()
    execmodel = gateway_base.get_execmodel("thread")
    plain = gateway_base.Popen2IO(plain_stream, io.BytesIO(), execmodel)
    whole = gateway_base.Popen2IO(whole_stream, io.BytesIO(), execmodel)
    compat.whole_writes(whole)
    plain.write(b"a whole message")
    whole.write(b"a whole message")
    assert bytes(plain_stream.received) == b"a w"  # the bug (docs/upstream.md)
    assert bytes(whole_stream.received) == b"a whole message", _gone(
        "whole_writes", "Popen2IO no longer writes through _write"
    )


@pytest.fixture
def popen_gateway() -> Iterator[execnet.Gateway]:
    gateway = execnet.makegateway(f"popen//python={sys.executable}")
    yield gateway
    gateway.exit()


def test_gateway_io(popen_gateway: execnet.Gateway) -> None:
    """What the bootstrap does in every agent: the agent's end writes whole messages."""
    channel = popen_gateway.remote_exec(
        """
        from pytest_parallel_agents.compat import gateway_io, whole_writes
        io = gateway_io(channel.gateway)
        whole_writes(io)
        channel.send(type(io).__name__ + " " + str(getattr(io, "_writes_whole", False)))
        """
    )
    assert channel.receive(30) == "Popen2IO True", _gone("gateway_io", "Gateway._io is gone")
    assert hasattr(compat.gateway_io(popen_gateway), "_write")


def test_gateway_process(popen_gateway: execnet.Gateway) -> None:
    pid = popen_gateway.remote_exec("import os; channel.send(os.getpid())").receive(30)
    process = compat.gateway_process(popen_gateway)
    assert isinstance(process, subprocess.Popen), _gone(
        "gateway_process", "Gateway._io.popen is gone"
    )
    assert process.pid == pid


def test_gateway_namespace(popen_gateway: execnet.Gateway) -> None:
    channel = popen_gateway.remote_exec(
        """
        from pytest_parallel_agents.compat import gateway_namespace
        namespace = gateway_namespace(channel)
        channel.send(namespace is not None and namespace.get("Channel") is type(channel))
        """
    )
    assert channel.receive(30), _gone("gateway_namespace", "Channel.send has no __globals__")
    assert compat.gateway_namespace(channel) is vars(gateway_base)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_gateway_over_pipes_and_serve_over_pipes() -> None:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 70
        try:
            os.close(to_child_w)
            os.close(from_child_r)
            compat.serve_over_pipes(
                execnet,
                os.fdopen(from_child_w, "wb", buffering=0),
                os.fdopen(to_child_r, "rb", buffering=0),
                "gw-compat",
            )
            code = 0
        finally:
            os._exit(code)
    os.close(to_child_r)
    os.close(from_child_w)
    group = execnet.Group()
    process = ForkedProcess(pid)
    try:
        gateway = compat.gateway_over_pipes(
            execnet,
            group,
            os.fdopen(to_child_w, "wb", buffering=0),
            os.fdopen(from_child_r, "rb", buffering=0),
            process,
            "gw-compat",
        )
        assert "gw-compat" in group, _gone("gateway_over_pipes", "Group._register is gone")
        assert compat.gateway_process(gateway) is process
        assert getattr(compat.gateway_io(gateway), "_writes_whole", False)
        echo = gateway.remote_exec("import os; channel.send(os.getpid())")
        assert echo.receive(30) == pid, _gone("serve_over_pipes", "the child serves nothing")
        group.terminate(timeout=30)  # waits for the process through the gateway's IO
        assert process.poll() == 0
    finally:
        process.kill()
        process.wait(30)


# --- coverage ---------------------------------------------------------------------------------

_FLUSH = """
import json, sys
import coverage
from pytest_parallel_agents.compat import flush_coverage

cov = coverage.Coverage(data_file=sys.argv[1], source=[sys.argv[2]])
flushes = callable(getattr(getattr(cov, "_collector", None), "flush_data", None))
cov.start()
import measured
measured.work()
flushes = flushes or callable(getattr(getattr(cov, "_collector", None), "flush_data", None))
flush_coverage(cov)
data = coverage.CoverageData(basename=sys.argv[1])
data.read()
lines = {f.rsplit("/", 1)[-1]: sorted(data.lines(f) or []) for f in data.measured_files()}
print(json.dumps({"flushes": flushes, "lines": lines}))
"""


def test_flush_coverage(tmp_path: Path) -> None:
    """In a process of its own: no tracer of this process's (if it is measured) is touched."""
    (tmp_path / "measured.py").write_text("def work():\n    return 1\n")
    done = subprocess.run(
        [sys.executable, "-c", _FLUSH, str(tmp_path / ".coverage"), str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["flushes"], _gone(
        "flush_coverage", "no Coverage._collector.flush_data: every checkpoint walks the sources"
    )
    assert seen["lines"] == {"measured.py": [1, 2]}, seen


# --- pytest-cov -------------------------------------------------------------------------------

# Reads pytest-cov's options and silences it where the plugin does: before pytest-cov's own
# pytest_load_initial_conftests.
_SPY = """
import dataclasses, json
import pytest
from pytest_parallel_agents import compat

@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config):
    namespace = early_config.known_args_namespace
    options = compat.pytest_cov_options(namespace)
    with open("options.json", "w") as out:
        json.dump(options and dataclasses.asdict(options), out)
    compat.silence_pytest_cov(early_config, namespace)
    return (yield)
"""


def _with_pytest_cov(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytest.importorskip("pytest_cov")
    pytester.makepyfile(covspy=_SPY, test_one="def test_one():\n    pass\n")
    # A process of its own: pytest-cov, if not silenced, measures the process it runs in.
    return pytester.runpytest_subprocess(*INNER, *args)


def test_pytest_cov_options(pytester: pytest.Pytester) -> None:
    pytester.makefile(".cfg", setup="")
    result = _with_pytest_cov(
        pytester,
        "-p",
        "covspy",
        "--cov=src",
        "--cov",
        "--cov-report=term-missing",
        "--cov-report=xml:out.xml",
        "--cov-fail-under=80",
        "--cov-context=test",
        "--cov-branch",
        "--cov-append",
        "--no-cov-on-fail",
        "--cov-precision=2",
        "--cov-config=setup.cfg",
    )
    result.assert_outcomes(passed=1)
    options = json.loads((pytester.path / "options.json").read_text())
    assert options == {
        "sources": ["src", True],
        "reports": {"term-missing": None, "xml": "out.xml"},
        "config_file": "setup.cfg",
        "fail_under": 80.0,
        "context": "test",
        "branch": True,
        "append": True,
        "skip_reports_on_failure": True,
        "precision": 2,
    }, _gone("pytest_cov_options", f"read {options}")
    _with_pytest_cov(pytester, "-p", "covspy", "--cov=src", "--no-cov")
    assert json.loads((pytester.path / "options.json").read_text()) is None


def test_silence_pytest_cov(pytester: pytest.Pytester) -> None:
    reported = _with_pytest_cov(pytester, "--cov=.")
    assert "coverage: platform" in reported.stdout.str()  # what silencing takes away
    silenced = _with_pytest_cov(pytester, "-p", "covspy", "--cov=.")
    silenced.assert_outcomes(passed=1)
    assert "coverage: platform" not in silenced.stdout.str(), _gone(
        "silence_pytest_cov", "pytest-cov measured despite an empty cov_source"
    )
