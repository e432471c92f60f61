"""The execnet transport: gateways to agents, and a receiver that only decodes and enqueues.

Agents start in one of two ways, both ending in an execnet gateway that runs the same
bootstrap, so everything above this module is one code path:

- ``spawn``: an execnet spec (``popen`` here); a fresh interpreter imports pytest and
  collects the agent's files itself;
- ``fork`` (POSIX): the controller forks itself after collection and the child serves an
  execnet gateway over a pair of pipes; it already holds the collected session, so it
  neither imports nor collects anything.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Protocol, final

import execnet

from pytest_parallel_agents.compat import gateway_over_pipes, gateway_process, serve_over_pipes
from pytest_parallel_agents.transport.protocol import (
    ChannelClosed,
    Command,
    Event,
    ProtocolError,
    decode,
    encode,
)

# Runs in every agent; everything else lives in the agent module.
_BOOTSTRAP: Final = """
if __name__ == "__channelexec__":
    from pytest_parallel_agents.compat import gateway_io, whole_writes
    whole_writes(gateway_io(channel.gateway))
    from pytest_parallel_agents.agent.process import serve
    serve(channel)
"""
FORK: Final = "fork"

AgentEvent = tuple[str, Event]


class GatewaySpecError(ValueError):
    """A gateway spec execnet does not accept; the message names the spec."""


def parse_spec(spec: str) -> execnet.XSpec:
    """Validate one execnet spec without starting anything."""
    try:
        xspec = execnet.XSpec(spec)
    except Exception as exc:  # execnet raises bare ValueErrors and AttributeErrors here
        raise GatewaySpecError(f"invalid gateway spec {spec!r}: {exc}") from None
    if not (xspec.popen or xspec.ssh or xspec.socket or xspec.vagrant_ssh):
        raise GatewaySpecError(
            f"invalid gateway spec {spec!r}: expected popen, ssh=HOST or socket=HOST:PORT"
        )
    return xspec


@final
class ControlLink:
    """A gateway to a remote host that runs no agent: it prepares the host (directories,
    rsync), reads an agent's files after its death, signals its processes, cleans up.

    ``call`` runs a module-level function of plain Python on the host (execnet sends its
    source) and returns what it sends back.
    """

    def __init__(self, gateway: execnet.Gateway) -> None:
        self._gateway = gateway

    def call(self, function: Callable[..., None], timeout: float = 30.0, **kwargs: Any) -> Any:
        channel = self._gateway.remote_exec(function, **kwargs)
        try:
            return channel.receive(timeout)
        finally:
            with contextlib.suppress(Exception):
                channel.close()

    def rsync(self, source: str, destination: str, ignore: Callable[[str], bool]) -> None:
        """Copy the directory ``source`` to ``destination`` on the host (execnet's RSync)."""
        sync = _FilteredRSync(source, ignore)
        sync.add_target(self._gateway, destination)
        sync.send()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._gateway.exit()


class _FilteredRSync(execnet.RSync):
    def __init__(self, source: str, ignore: Callable[[str], bool]) -> None:
        super().__init__(source, verbose=False)
        self._ignore = ignore

    def filter(self, path: str) -> bool:
        return not self._ignore(path)


class Process(Protocol):
    """What the controller needs of an agent's local process (a Popen or a forked child)."""

    pid: int

    def wait(self, timeout: float | None = None) -> int: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...


@final
@dataclass
class AgentLink:
    """One agent's gateway and channel, as seen by the controller."""

    agent_id: str
    gateway: execnet.Gateway | None  # None: the gateway could not be made
    channel: execnet.Channel | None
    host: str
    spawn_started: float
    process: Process | None

    def send(self, command: Command) -> bool:
        """Send a command; False when the channel is already gone."""
        if self.channel is None:
            return False
        try:
            self.channel.send(encode(command))
        except (OSError, EOFError, ValueError, execnet.RemoteError):
            return False
        return True

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def exit_detail(self, fallback: str, timeout: float = 0.5) -> str:
        """How the agent's process ended: exit status or signal name."""
        if self.process is None:
            return fallback
        try:
            code = self.process.wait(timeout)
        except Exception:
            return fallback
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"


@final
class Transport:
    """Starts agents on execnet gateways and funnels their events into one queue."""

    def __init__(self) -> None:
        self.events: queue.Queue[AgentEvent] = queue.Queue()
        self._group = execnet.Group()
        # Control gateways outlive the agents' (stop_all): the hosts are cleaned up after.
        self._control_group = execnet.Group()
        self._links: dict[str, AgentLink] = {}
        self._closing: list[AgentLink] = []
        self._lock = threading.Lock()
        self._fork_fds: dict[str, tuple[int, int]] = {}

    def start(
        self, agents: list[tuple[str, str]], fork_child: Callable[[str], None] | None = None
    ) -> list[AgentLink]:
        """Start ``(agent_id, spec)`` agents; spec ``fork`` forks this process.

        ``fork_child(agent_id)`` runs in each forked child before it serves its gateway.
        Forks happen first, all of them before any new gateway thread exists here.
        """
        forked: dict[str, tuple[int, int, int, float]] = {}
        for agent_id, spec in agents:
            if spec == FORK:
                if fork_child is None:
                    raise ValueError("fork start needs a fork_child callback")
                forked[agent_id] = self._fork(agent_id, fork_child)
        links: dict[str, AgentLink] = {}
        for agent_id, (pid, read_fd, write_fd, started) in forked.items():
            links[agent_id] = self._connect_forked(agent_id, pid, read_fd, write_fd, started)
        spawned = [(a, s) for a, s in agents if s != FORK]
        if spawned:
            with ThreadPoolExecutor(
                max_workers=min(len(spawned), 8), thread_name_prefix="agent-start"
            ) as pool:
                for link in pool.map(lambda pair: self._spawn(*pair), spawned):
                    links[link.agent_id] = link
        return [links[agent_id] for agent_id, _ in agents]

    def _spawn(self, agent_id: str, spec: str) -> AgentLink:
        started = time.perf_counter()
        xspec = parse_spec(spec)
        if xspec.popen and not xspec.python:
            spec = f"{spec}//python={sys.executable}"
        try:
            gateway = self._group.makegateway(spec + f"//id={agent_id}")
        except Exception as exc:
            # An unreachable host ends like an agent that died at once: the controller's
            # crash path decides what follows (another host, or giving up).
            why = " ".join(f"could not start the gateway: {exc}".split())[:300]
            self.events.put((agent_id, ChannelClosed(why)))
            return AgentLink(agent_id, None, None, spec, started, None)
        host = "popen" if xspec.popen else str(xspec.ssh or xspec.socket or "remote")
        # The Popen of a local gateway (of the ssh client, for ssh); a socket gateway has
        # no local process.
        process = gateway_process(gateway)
        return self._open(agent_id, gateway, host, started, process)

    def _fork(
        self, agent_id: str, fork_child: Callable[[str], None]
    ) -> tuple[int, int, int, float]:
        started = time.perf_counter()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Other agents' pipe ends must not live on in this child, or their EOF never comes.
        # The numbers may be stale (reused since); closing a stale one in the child is
        # harmless as long as it is not one of the child's own.
        own = {to_child_r, from_child_w, 0, 1, 2}
        inherited = [fd for pair in self._fork_fds.values() for fd in pair if fd not in own]
        sys.stdout.flush()
        sys.stderr.flush()
        # An armed faulthandler watchdog (a controller nested in a test with a timeout) has
        # no thread in the child, and cancelling it there deadlocks: disarm it first.
        faulthandler.cancel_dump_traceback_later()
        with warnings.catch_warnings():
            # 3.12+ warns about forking with threads alive; ours only wait on pipes.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            _serve_forked_child(
                agent_id,
                to_child_r,
                from_child_w,
                [*inherited, to_child_w, from_child_r],
                fork_child,
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self._fork_fds[agent_id] = (from_child_r, to_child_w)
        return pid, from_child_r, to_child_w, started

    def _connect_forked(
        self, agent_id: str, pid: int, read_fd: int, write_fd: int, started: float
    ) -> AgentLink:
        process = ForkedProcess(pid)
        gateway = gateway_over_pipes(
            execnet,
            self._group,
            os.fdopen(write_fd, "wb", buffering=0),
            os.fdopen(read_fd, "rb", buffering=0),
            process,
            agent_id,
        )
        return self._open(agent_id, gateway, "popen", started, process)

    def _open(
        self,
        agent_id: str,
        gateway: execnet.Gateway,
        host: str,
        started: float,
        process: Any,
    ) -> AgentLink:
        channel = gateway.remote_exec(_BOOTSTRAP)
        link = AgentLink(agent_id, gateway, channel, host, started, process)
        with self._lock:
            self._links[agent_id] = link
        channel.setcallback(_Receiver(agent_id, self.events), endmarker=_END)
        return link

    def open_control(self, spec: str, name: str) -> ControlLink:
        """A control gateway to the host of ``spec`` (see ControlLink)."""
        return ControlLink(self._control_group.makegateway(f"{spec}//id={name}"))

    def close_controls(self, timeout: float = 2.0) -> None:
        self._control_group.terminate(timeout=timeout)

    def stop(self, agent_id: str) -> None:
        """Ask an agent's gateway to end, without waiting; stop_all reaps it."""
        with self._lock:
            link = self._links.pop(agent_id, None)
            if link is not None:
                self._closing.append(link)
            self._fork_fds.pop(agent_id, None)
        if link is not None:
            _exit_gateway(link)

    def stop_all(self, timeout: float = 2.0) -> None:
        """End every agent, waiting at most ``timeout`` in all before killing the rest."""
        with self._lock:
            live = list(self._links.values())
            self._links.clear()
            links = self._closing + live
            self._closing = []
        for link in live:
            _exit_gateway(link)
        deadline = time.monotonic() + timeout
        for link in links:
            _reap(link, max(0.0, deadline - time.monotonic()))
        self._group.terminate(timeout=timeout)
        self._fork_fds.clear()

    def interrupt_local(self) -> None:
        """SIGINT to every agent process on this machine, as a terminal's Ctrl-C would send
        it if agents were not in process groups of their own (remote agents get none)."""
        with self._lock:
            links = list(self._links.values())
        for link in links:
            if link.host == "popen" and link.process is not None:
                with contextlib.suppress(OSError):
                    os.kill(link.process.pid, signal.SIGINT)

    def kill_all(self) -> None:
        """Kill every agent process at once (a second Ctrl-C)."""
        with self._lock:
            links = self._closing + list(self._links.values())
            self._links.clear()
            self._closing = []
        for link in links:
            if link.process is not None:
                with contextlib.suppress(Exception):
                    link.process.kill()
                    link.process.wait(5.0)


_END: Final = object()


@final
class _Receiver:
    """Channel callback, run on execnet's IO thread: decode and enqueue, nothing else."""

    def __init__(self, agent_id: str, events: queue.Queue[AgentEvent]) -> None:
        self._agent_id = agent_id
        self._events = events

    def __call__(self, data: object) -> None:
        if data is _END:
            self._events.put((self._agent_id, ChannelClosed("channel closed")))
            return
        try:
            event = decode(data)
        except ProtocolError as exc:
            self._events.put((self._agent_id, ChannelClosed(f"protocol error: {exc}")))
            return
        self._events.put((self._agent_id, event))  # type: ignore[arg-type]


@final
class ForkedProcess:
    """A forked child, with the parts of subprocess.Popen the transport and execnet use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"agent pid {self.pid}", timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return code

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _serve_forked_child(
    agent_id: str,
    read_fd: int,
    write_fd: int,
    close_fds: list[int],
    fork_child: Callable[[str], None],
) -> None:  # pragma: no cover - runs in the child
    code = 70
    try:
        for fd in close_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        # The controller's SIGTERM handler came along; an agent just dies of SIGTERM.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        fork_child(agent_id)
        serve_over_pipes(
            execnet,
            os.fdopen(write_fd, "wb", buffering=0),
            os.fdopen(read_fd, "rb", buffering=0),
            agent_id,
        )
        code = 0
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        os._exit(code)


def _exit_gateway(link: AgentLink) -> None:
    # Ending the gateway (not just the channel) is what makes the agent process exit.
    if link.gateway is not None:
        with contextlib.suppress(Exception):
            link.gateway.exit()


def _reap(link: AgentLink, timeout: float) -> None:
    if link.process is None:
        return
    try:
        link.process.wait(timeout)
    except Exception:
        link.process.kill()
        with contextlib.suppress(Exception):
            link.process.wait(5.0)
