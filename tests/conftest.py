"""Shared fixtures of the test suite."""

from __future__ import annotations

import faulthandler
import os
import shutil
import sys
import threading
from collections.abc import Iterator

import pytest
from helpers import Terminal
from sshd import SshServer, SshUnavailable

# An end-to-end test that hangs (a deadlock between controller and agents) must not hang
# the whole suite forever: dump every thread's stack and end the process instead.
# A plain thread, not faulthandler.dump_traceback_later: agents may be forked from this
# process, and a fork inheriting an armed faulthandler watchdog deadlocks when pytest
# cancels it there.
_HANG_SECONDS = 240


def _give_up() -> None:
    faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
    os._exit(3)


@pytest.fixture(autouse=True)
def _outer_agent_environment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This suite runs on its own agents (dogfood): an inner pytester run must not see the
    outer agent's PYTEST_AGENT* variables, or it would believe it runs in that agent; and no
    inner run, pytester's or a subprocess, may see the outer agent's pytest-xdist identity
    (PYTEST_XDIST_WORKER disables pytest-benchmark, for one)."""
    inner = ("PYTEST_AGENT_", "PYTEST_AGENTS_") if "pytester" in request.fixturenames else ()
    for name in [n for n in os.environ if n.startswith(("PYTEST_XDIST_", *inner))]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _hang_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    if "pytester" not in request.fixturenames:
        yield
        return
    timer = threading.Timer(_HANG_SECONDS, _give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A private OpenSSH server on 127.0.0.1 for remote-agent tests (see tests/sshd.py)."""
    if os.environ.get("PYTEST_AGENTS_NO_SSH"):
        pytest.skip("PYTEST_AGENTS_NO_SSH is set: remote-agent tests skipped")
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
    except SshUnavailable as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def terminal(pytester: pytest.Pytester) -> Iterator[Terminal]:
    """A tmux pane on a private server socket, in the test's project directory."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed; make test installs it")
    pane = Terminal(f"agents-{os.getpid()}-{pytester.path.name}", pytester.path)
    try:
        yield pane
    finally:
        pane.close()
