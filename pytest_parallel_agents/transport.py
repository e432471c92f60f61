"""The execnet transport: gateways to agents, and a receiver that only decodes and enqueues."""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, final

import execnet

from .protocol import ChannelClosed, Command, Event, ProtocolError, decode, encode

# Runs in the fresh interpreter of every agent; everything else lives in the agent module.
_BOOTSTRAP: Final = """
import sys
if __name__ == "__channelexec__":
    from pytest_parallel_agents.agent import serve
    serve(channel)
"""

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
@dataclass
class AgentLink:
    """One agent's gateway and channel, as seen by the controller."""

    agent_id: str
    gateway: execnet.Gateway
    channel: execnet.Channel
    host: str
    spawn_started: float

    def send(self, command: Command) -> bool:
        """Send a command; False when the channel is already gone."""
        try:
            self.channel.send(encode(command))
        except (OSError, EOFError, ValueError, execnet.RemoteError):
            return False
        except Exception as exc:  # execnet raises IOError subclasses it does not export
            if "closed" in str(exc).lower():
                return False
            raise
        return True

    @property
    def pid(self) -> int | None:
        popen = getattr(self.gateway, "_io", None)
        popen = getattr(popen, "popen", None)
        pid = getattr(popen, "pid", None)
        return pid if isinstance(pid, int) else None


@final
class Transport:
    """Starts agents on execnet gateways and funnels their events into one queue."""

    def __init__(self) -> None:
        self.events: queue.Queue[AgentEvent] = queue.Queue()
        self._group = execnet.Group()
        self._links: dict[str, AgentLink] = {}
        self._closing: list[AgentLink] = []
        self._lock = threading.Lock()

    def start(self, agents: list[tuple[str, str]]) -> list[AgentLink]:
        """Start ``(agent_id, spec)`` agents concurrently; each starts its session on its own."""
        if not agents:
            return []
        workers = min(len(agents), 8)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agent-start") as pool:
            return list(pool.map(lambda pair: self._start_one(*pair), agents))

    def _start_one(self, agent_id: str, spec: str) -> AgentLink:
        started = time.perf_counter()
        xspec = parse_spec(spec)
        if xspec.popen and not xspec.python:
            spec = f"{spec}//python={sys.executable}"
        gateway = self._group.makegateway(spec + f"//id={agent_id}")
        channel = gateway.remote_exec(_BOOTSTRAP)
        host = "popen" if xspec.popen else str(xspec.ssh or xspec.socket or "remote")
        link = AgentLink(agent_id, gateway, channel, host, started)
        with self._lock:
            self._links[agent_id] = link
        channel.setcallback(self._receiver(agent_id), endmarker=_END)
        return link

    def _receiver(self, agent_id: str) -> _Receiver:
        return _Receiver(agent_id, self.events)

    def stop(self, agent_id: str) -> None:
        """Ask an agent's gateway to end, without waiting; stop_all reaps it."""
        with self._lock:
            link = self._links.pop(agent_id, None)
            if link is not None:
                self._closing.append(link)
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


def _exit_gateway(link: AgentLink) -> None:
    # Ending the gateway (not just the channel) is what makes the agent process exit.
    with contextlib.suppress(Exception):
        link.gateway.exit()


def _reap(link: AgentLink, timeout: float) -> None:
    popen = getattr(getattr(link.gateway, "_io", None), "popen", None)
    if popen is None:
        return
    try:
        popen.wait(timeout)
    except Exception:
        popen.kill()
        popen.wait()
