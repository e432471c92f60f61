"""Where agents run: local processes, or the slots of ``--agents-tx`` and their hosts.

The controller asks the fleet for a place for each agent it starts, and goes through it for
whatever depends on where the agent is: the agent's scoreboard slot and crash log (a local
file, or read over the host's control gateway), signals, coverage left by a dead agent, and
the hosts' run directories, removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar, cast, final

from pytest_parallel_agents.planning.txspecs import TxSlot, TxSpec, expand, fits
from pytest_parallel_agents.transport.gateways import Transport
from pytest_parallel_agents.transport.hosts import Host
from pytest_parallel_agents.transport.placement import HOST_CWD
from pytest_parallel_agents.transport.scoreboard import crash_log_path, read_crash_log, read_slot

# A remote agent's slot is read over the network: at most this often by the watchdog.
_REMOTE_SLOT_EVERY: Final = 1.0
_REMOTE_LOG_EVERY: Final = 0.1

_T = TypeVar("_T")


class HostUnreachable(Exception):
    """A host of --agents-tx could not be prepared; the message names its spec."""


@final
@dataclass(frozen=True)
class Placement:
    """Where one agent runs."""

    spec: str  # transport.FORK, or an execnet spec
    host: str  # as the metrics name it
    remote: bool
    host_root: str = ""
    host_dir: str = ""
    control: Host | None = None
    slot: TxSlot | None = None


@final
class Fleet:
    """Places agents; with ``tx`` empty, every agent is a local process of ``local_spec``."""

    def __init__(
        self,
        transport: Transport,
        *,
        local_spec: str,
        tx: Sequence[TxSpec] = (),
        run_id: str = "",
        rootdir: Path | None = None,
        rsync: Sequence[Path] = (),
        rsync_ignore: Sequence[str] = (),
        inifile: Path | None = None,
    ) -> None:
        self._transport = transport
        self._local_spec = local_spec
        self._slots = expand(tx)
        self._bound = frozenset(s.spec.suite for s in self._slots if s.spec.suite)
        self._run_id = run_id
        self._rootdir = rootdir
        self._rsync = tuple(rsync)
        self._rsync_ignore = tuple(rsync_ignore)
        self._inifile = inifile
        self._hosts: dict[str, Host] = {}
        self._taken: dict[str, TxSlot] = {}  # agent id → its slot
        self._placements: dict[str, Placement] = {}
        self._host_failures: dict[str, int] = {}
        # Reads over the hosts' control gateways for the watchdog, off the controller's loop.
        self._reader: ThreadPoolExecutor | None = None
        self._reading: dict[tuple[str, str], Future[Any]] = {}
        self._read_values: dict[tuple[str, str], tuple[float, Any]] = {}
        self._fetches: list[
            tuple[Future[dict[str, bytes]], str, Callable[[dict[str, bytes], str], None]]
        ] = []

    # --- hosts --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Open a control gateway to every ssh host, make its run directory, rsync."""
        specs = {
            s.spec.execnet_spec: s.spec
            for s in self._slots
            if s.spec.kind in ("ssh", "vagrant_ssh")
        }
        if not specs:
            return

        def open_host(spec: TxSpec) -> Host:
            try:
                link = self._transport.open_control(spec.execnet_spec, f"control-{self._run_id}")
                host = Host(spec, link, self._run_id)
                assert self._rootdir is not None
                host.prepare(self._rootdir, self._rsync, self._rsync_ignore, self._inifile)
            except Exception as exc:
                raise HostUnreachable(
                    f"--agents-tx {spec.raw!r}: cannot prepare the host: "
                    + " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                ) from None
            return host

        with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
            futures = {key: pool.submit(open_host, spec) for key, spec in specs.items()}
            for key, future in futures.items():
                try:
                    self._hosts[key] = future.result()
                except HostUnreachable:
                    self.cleanup()
                    raise

    def cleanup(self, pids: dict[str, int | None] | None = None) -> list[str]:
        """End this run's agents left on each host, remove every host's run directory; the
        hosts where that failed, one line each."""
        self.deliver_fetched(wait=True)  # before the hosts' run directories go
        problems = []
        for host in self._hosts.values():
            mine = [
                pid
                for agent_id, pid in (pids or {}).items()
                if pid is not None
                and (placement := self._placements.get(agent_id)) is not None
                and placement.control is host
            ]
            if not host.cleanup(mine):
                problems.append(f"could not remove {host.run_dir} on {host.spec.host}")
        self._hosts.clear()
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)
            self._reader = None
        self._transport.close_controls()
        return problems

    # --- places -------------------------------------------------------------------------

    def reserve(self, suite: str, agent_ids: Sequence[str]) -> bool:
        """Take a slot for each agent (all or none); always True without --agents-tx."""
        if not self._slots:
            return True
        taken = {id(slot) for slot in self._taken.values()}
        free = [s for s in self._slots if id(s) not in taken and fits(s, suite, self._bound)]
        if len(free) < len(agent_ids):
            return False
        # Hosts that lost agents lately come last: a dropped host should not get them all.
        free.sort(key=lambda s: (self._host_failures.get(s.spec.execnet_spec, 0), s.number))
        for agent_id, slot in zip(agent_ids, free, strict=False):
            self._taken[agent_id] = slot
        return True

    def place(self, agent_id: str) -> Placement:
        """Where a reserved (or, without --agents-tx, any) agent runs."""
        slot = self._taken.get(agent_id)
        if slot is None:
            placement = Placement(self._local_spec, "popen", remote=False)
        else:
            spec = slot.spec
            host = self._hosts.get(spec.execnet_spec)
            root = host.root if host is not None else (HOST_CWD if spec.chdir else "")
            placement = Placement(
                spec.execnet_spec,
                spec.host,
                remote=spec.remote,
                host_root=root if spec.remote else "",
                host_dir=host.agent_dir(agent_id) if host is not None else "",
                control=host,
                slot=slot,
            )
        self._placements[agent_id] = placement
        return placement

    def release(self, agent_id: str, *, crashed: bool) -> None:
        slot = self._taken.pop(agent_id, None)
        if slot is not None and crashed:
            key = slot.spec.execnet_spec
            self._host_failures[key] = self._host_failures.get(key, 0) + 1

    # --- what depends on where the agent is ---------------------------------------------

    def _reader_pool(self) -> ThreadPoolExecutor:
        if self._reader is None:
            self._reader = ThreadPoolExecutor(4, thread_name_prefix="agents-remote-read")
        return self._reader

    def read_slot(self, agent_id: str, status_dir: Path) -> tuple[int | None, float]:
        """The agent's slot as it is now (for the crash path: over the network, a wait)."""
        placement = self._placements.get(agent_id)
        if placement is None or not placement.remote:
            return read_slot(status_dir, agent_id)
        if placement.control is None:
            return None, 0.0  # a socket gateway: no way to look, the heartbeat must do
        return placement.control.read_slot(agent_id)

    def watched_slot(self, agent_id: str, status_dir: Path) -> tuple[int | None, float] | None:
        """The slot for the watchdog, without waiting: a local file is read at once; a remote
        one comes from the last read over the host's gateway, which runs on a thread of its
        own at most every ``_REMOTE_SLOT_EVERY`` seconds. None until a first read is in (a
        slow or dead host stalls nothing but what it knows of its own agents)."""
        placement = self._placements.get(agent_id)
        if placement is None or not placement.remote:
            return read_slot(status_dir, agent_id)
        control = placement.control
        if control is None:
            return None, 0.0
        return self._background(("slot", agent_id), lambda: control.read_slot(agent_id))

    def crash_log_size(self, agent_id: str, status_dir: Path) -> int | None:
        """How much the agent's faulthandler wrote so far, without waiting (as
        ``watched_slot``; while a stuck agent dumps its stacks, every ``_REMOTE_LOG_EVERY``)."""
        placement = self._placements.get(agent_id)
        if placement is None or not placement.remote:
            try:
                return crash_log_path(status_dir, agent_id).stat().st_size
            except OSError:
                return 0
        control = placement.control
        if control is None:
            return 0
        return self._background(
            ("log", agent_id),
            lambda: len(control.read_crash_log(agent_id)),
            every=_REMOTE_LOG_EVERY,
        )

    def _background(
        self, key: tuple[str, str], read: Callable[[], _T], *, every: float = _REMOTE_SLOT_EVERY
    ) -> _T | None:
        """The last value ``read`` returned for ``key``; a new read starts on the reader
        thread once that value is ``every`` seconds old and none is under way."""
        now = time.monotonic()
        future = self._reading.get(key)
        if future is not None and future.done():
            del self._reading[key]
            with contextlib.suppress(Exception):  # an unreachable host: the heartbeat decides
                self._read_values[key] = (now, future.result())
        cached = self._read_values.get(key)
        if key not in self._reading and (cached is None or now - cached[0] >= every):
            self._reading[key] = self._reader_pool().submit(read)
        return None if cached is None else cast("_T", cached[1])

    def sees_slot(self, agent_id: str) -> bool:
        """Whether the agent's scoreboard slot can be read (not on a socket gateway)."""
        placement = self._placements.get(agent_id)
        return placement is None or not placement.remote or placement.control is not None

    def read_crash_log(self, agent_id: str, status_dir: Path) -> str:
        placement = self._placements.get(agent_id)
        if placement is None or not placement.remote:
            return read_crash_log(status_dir, agent_id)
        return placement.control.read_crash_log(agent_id) if placement.control else ""

    def signal(self, agent_id: str, pid: int | None, signum: int) -> bool:
        """Signal an agent's process where it runs; False when that cannot be done."""
        placement = self._placements.get(agent_id)
        if pid is None:
            return False
        if placement is None or not placement.remote:
            try:
                os.kill(pid, signum)
            except OSError:
                return False
            return True
        return placement.control is not None and placement.control.signal(pid, signum)

    def fetch_remote_coverage(
        self, agent_id: str, deliver: Callable[[dict[str, bytes], str], None]
    ) -> None:
        """Fetch a dead remote agent's coverage data files on the reader thread; ``deliver``
        gets them and the host root (for remapping) from ``deliver_fetched``, on the caller's
        thread. Nothing to fetch for a local agent (its files are here) or a socket one."""
        placement = self._placements.get(agent_id)
        if placement is None or not placement.remote or placement.control is None:
            return
        future = self._reader_pool().submit(placement.control.coverage_files, agent_id)
        self._fetches.append((future, placement.host_root, deliver))

    def deliver_fetched(self, *, wait: bool = False) -> None:
        """Hand over the coverage fetched so far; with ``wait``, all of it (the run's end)."""
        waiting = []
        for future, root, deliver in self._fetches:
            if not (wait or future.done()):
                waiting.append((future, root, deliver))
                continue
            try:
                files = future.result()
            except Exception:  # the host went away with it: that coverage is lost
                continue
            if files:
                deliver(files, root)
        self._fetches = waiting
