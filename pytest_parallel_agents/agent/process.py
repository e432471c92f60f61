"""The agent process: forked or over a gateway, it serves one AgentSession and reports its end."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import final

import pytest

from pytest_parallel_agents import compat
from pytest_parallel_agents.agent.channel import (
    LOST,
    Channel,
    ControllerLost,
    Inbox,
    Receiver,
    Sender,
)
from pytest_parallel_agents.agent.session import AgentSession
from pytest_parallel_agents.agent.stacks import note_gateway
from pytest_parallel_agents.coverage.measure import Measurement, agent_data_file
from pytest_parallel_agents.transport.placement import place
from pytest_parallel_agents.transport.protocol import (
    PROTOCOL_VERSION,
    AgentAlive,
    AgentFailed,
    AgentFinished,
    StartSession,
)
from pytest_parallel_agents.transport.scoreboard import capture_stderr


@final
@dataclass(frozen=True)
class _Forked:
    """In a forked agent: the controller's collected session, inherited through fork."""

    config: pytest.Config
    session: pytest.Session


_forked: _Forked | None = None


def fork_child_setup(config: pytest.Config, session: pytest.Session) -> Callable[[str], None]:
    """The callback the transport runs in a freshly forked child, before it serves."""

    def setup(agent_id: str) -> None:
        global _forked
        _forked = _Forked(config, session)

    return setup


def serve(channel: Channel) -> None:
    """Entry point run by the bootstrap on the agent's gateway."""
    inbox = Inbox()
    note_gateway(channel)
    channel.setcallback(Receiver(inbox), endmarker=LOST)
    start = inbox.get()
    if isinstance(start, ControllerLost):
        return
    sender = Sender(channel)
    if not isinstance(start, StartSession) or start.protocol != PROTOCOL_VERSION:
        sender.send(AgentFailed(f"agent speaks protocol {PROTOCOL_VERSION}, got {start!r:.200}"))
        return
    # Proof of life at once: a spawned agent's heartbeats start with its session object, after
    # placement and a second of quiet, which a loaded machine can stretch past a short
    # --agents-heartbeat while the agent is healthy.
    sender.send(AgentAlive())
    if _forked is not None:
        _serve_forked(start, inbox, sender, _forked)
        return
    start, own_dir = place(start)
    try:
        _serve_spawned(start, inbox, sender)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _serve_spawned(start: StartSession, inbox: Inbox, sender: Sender) -> None:
    """A fresh interpreter (local or on a remote host): a whole pytest session of its own."""
    _prepare_process(start)
    # Before pytest imports a conftest: import-time lines of the project count too.
    measurement = _start_coverage(start)
    session = AgentSession(start, inbox, sender, measurement)
    session.output.prepare()
    try:
        status = pytest.main(list(start.args), plugins=[session, *session.extra_plugins])
    except BaseException:
        sender.send(AgentFailed(traceback.format_exc()))
        return
    finally:
        session.output.stop()
    if not session.ready_sent:
        sender.send(
            AgentFailed(f"agent session ended with exit status {int(status)} before collection")
        )
        return
    _finished(sender, session)


def _start_coverage(start: StartSession) -> Measurement | None:
    if start.coverage is None:
        return None
    data_file = agent_data_file(start.coverage, start.agent_id)
    # Subprocesses that measure themselves (coverage's patch = subprocess) write beside it.
    os.environ["COVERAGE_FILE"] = data_file
    measurement = Measurement(start.coverage, data_file, whole_view=False)
    measurement.start()
    return measurement


def _finished(sender: Sender, session: AgentSession) -> None:
    """Last results out, then the agent's coverage saved, then its closing figures."""
    session.flush()
    seconds = 0.0
    shipped: tuple[tuple[str, bytes], ...] = ()
    measurement = session.measurement
    if measurement is not None:
        started = time.perf_counter()
        measurement.finish()
        seconds = measurement.checkpoint_seconds + time.perf_counter() - started
        if session.start.remote:
            # The controller cannot read this host's files: the data travels with us.
            directory = Path(measurement.request.directory)
            shipped = tuple((p.name, p.read_bytes()) for p in sorted(directory.iterdir()))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sender.send(AgentFinished(int(peak_kb), tuple(session.session_warnings), seconds, shipped))


def _serve_forked(start: StartSession, inbox: Inbox, sender: Sender, forked: _Forked) -> None:
    """Run tests on the session this process inherited: no import, no collection."""
    _prepare_environment(start)
    if not start.forward_output:
        # fd 1 is still the user's terminal; nothing of an agent belongs there.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    # The controller paused its own measurement before forking; this agent measures afresh.
    measurement = _start_coverage(start)
    agent = AgentSession(start, inbox, sender, measurement)
    config, session = forked.config, forked.session
    try:
        for plugin in agent.extra_plugins:
            config.pluginmanager.register(plugin)
        agent.adopt(config, session)
        agent.output.start()
        with contextlib.suppress(KeyboardInterrupt):  # AgentInterrupted told the controller
            agent.pytest_runtestloop(session)
        # Session and configure hooks ran once, in the controller, and run their finish there
        # too: calling them here would undo the controller's setup under the other agents.
        # Only this agent's own fixtures are torn down (usually done by the last test already).
        compat.teardown_session(config, session)
    except pytest.exit.Exception:
        pass  # a test called pytest.exit(): SessionExited told the controller
    except BaseException:
        sender.send(AgentFailed(traceback.format_exc()))
        return
    finally:
        agent.output.stop()
    _finished(sender, agent)


def _prepare_process(start: StartSession) -> None:
    os.chdir(start.invocation_dir)
    if start.remote:
        # The host's interpreter keeps its own paths; the project's come first.
        sys.path[:0] = [p for p in start.sys_path if p not in sys.path]
    else:
        sys.path[:] = list(start.sys_path)
    _prepare_environment(start)


def _prepare_environment(start: StartSession) -> None:
    # Our own process group: a Ctrl-C in the terminal reaches the controller alone, which
    # stops the agents in order (and tests that send themselves SIGINT still can). A remote
    # agent has no terminal of ours, and may share its process with a socket server.
    if not start.remote:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        capture_stderr(start.status_dir, start.agent_id)
    worker = dict(start.worker_input)
    if worker:
        os.environ.update(
            PYTEST_XDIST_WORKER=str(worker["workerid"]),
            PYTEST_XDIST_WORKER_COUNT=str(worker["workercount"]),
            PYTEST_XDIST_TESTRUNUID=str(worker["testrunuid"]),
        )
    os.environ.update(
        PYTEST_AGENT_ID=start.agent_id,
        PYTEST_AGENT_SUITE=start.suite,
        PYTEST_AGENTS_TOTAL=str(start.total_agents),
        PYTEST_AGENTS_RUN_ID=start.run_id,
    )
