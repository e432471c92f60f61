"""The agent's end of its channel: commands in, batched results and forwarded output out."""

from __future__ import annotations

import _thread
import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from os import _exit, getppid
from pickle import dumps as _dumps
from pickle import loads as _loads
from time import monotonic
from typing import IO, Any, Final, Protocol, final

from pytest_parallel_agents.transport.protocol import (
    HEARTBEAT_INTERVAL,
    AgentAlive,
    Command,
    Event,
    OutputForwarded,
    TestResult,
    TestsReported,
    decode,
    encode,
)

# How long finished tests' reports may wait to travel together: batching without lag.
_FLUSH_DELAY: Final = 0.01
# How long they wait at most when a long test keeps the test thread from sending them.
_BACKSTOP: Final = 0.05
# acquire()'s arguments, made once: a call with the tuple itself builds no other.
_BACKSTOP_WAIT: Final = (True, _BACKSTOP)
# The exit status of an agent whose controller went away without stopping it.
ORPHANED: Final = 70

# The functions our threads call while a test runs are bound here, at import: a test that
# patches ``time.monotonic`` or ``os.getppid`` process-wide (mock.patch, freezegun) must
# neither see our calls in its mock nor freeze our clocks.


class Channel(Protocol):
    """The part of an execnet channel the agent uses (the agent never imports execnet)."""

    def send(self, item: object) -> None: ...

    def setcallback(self, callback: Callable[[Any], None], endmarker: object = ...) -> None: ...


class ControllerLost:
    """Placed in the inbox when the channel to the controller ends."""


LOST: Final = ControllerLost()
# The idents of the threads ``start_hidden`` runs: not the test's, so left out of the stacks
# pytest-timeout dumps (agent_stacks).
OWN_THREADS: Final[set[int]] = set()


def start_hidden(target: Callable[..., object], *args: object) -> threading.Event:
    """Run ``target`` on a thread that tests cannot see; the event is set once it returns.

    A plain run has one thread: a test asserting ``threading.active_count() == 1``, or
    listing ``threading.enumerate()`` for leaks, must find the same in an agent. A thread
    started below ``threading`` is not in its registry (execnet starts its own that way).
    """
    done = threading.Event()

    def run() -> None:
        ident = _thread.get_ident()
        OWN_THREADS.add(ident)
        try:
            target(*args)
        finally:
            OWN_THREADS.discard(ident)
            done.set()

    _thread.start_new_thread(run, ())
    return done


@final
class Inbox:
    """Commands from the controller, held as bytes until the test thread takes them.

    Commands arrive while a test runs (a top-up after the results the backstop sent). What
    the receiving thread leaves behind must not be objects the garbage collector tracks: a
    leak test counting ``gc.get_objects()`` between its iterations would count them, where a
    plain run has nothing arriving. Bytes are untracked; the message is built when the test
    thread takes it, between tests.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[bytes | ControllerLost] = queue.SimpleQueue()

    def put(self, data: object) -> None:
        """Keep ``data`` as received from the channel (or ``LOST``)."""
        if data is LOST:
            self._queue.put(LOST)
            return
        try:
            self._queue.put(_dumps(data, 4))
        except Exception:  # not what a controller sends: the channel cannot be trusted
            self._queue.put(LOST)

    def get(self, block: bool = True) -> Command | ControllerLost:
        """The next command; ``LOST`` once the channel ended or sent what does not decode.
        Raises ``queue.Empty`` when not ``block`` and nothing waits."""
        item = self._queue.get(block)
        if isinstance(item, ControllerLost):
            return item
        try:
            message = decode(_loads(item))
        except Exception:
            return LOST
        if isinstance(message, Command):
            return message
        return LOST

    def get_nowait(self) -> Command | ControllerLost:
        return self.get(block=False)


@final
class Receiver:
    """Channel callback on execnet's IO thread: enqueue, nothing else."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    def __call__(self, data: object) -> None:
        self._inbox.put(data)


@final
class Sender:
    """Serialises sends from the test thread and the flusher thread."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()

    def send(self, event: Event) -> None:
        # A failed send means the controller is gone; the parent watch or the inbox ends us.
        # (try, not contextlib.suppress: no object to allocate for a send from the backstop.)
        with self._lock:
            try:  # noqa: SIM105
                self._channel.send(encode(event))
            except Exception:
                pass


@final
class ResultBuffer:
    """Finished tests travel together: flushed by the test thread itself once _FLUSH_DELAY has
    passed since the last send, and by a backstop thread when a long test keeps it busy.
    That thread also sends heartbeats, and ends the agent once its parent (``parent_pid``,
    the controller of a local agent) is gone.

    Flushing inline keeps a second thread from contending for the GIL after every test.
    With a ``checkpoint`` (coverage saving), results leave only from the test thread, each
    batch after its checkpoint: a result the controller holds has its coverage saved.
    """

    def __init__(
        self,
        sender: Sender,
        checkpoint: Callable[[], None] | None = None,
        *,
        parent_pid: int = 0,
    ) -> None:
        self._sender = sender
        self._checkpoint = checkpoint
        self._parent_pid = parent_pid
        self._pending: list[TestResult] = []
        self._sent: list[TestResult] = []
        self._lock = threading.Lock()
        self._last_send = monotonic()
        # Held until close(). The backstop waits on it with a timeout: a lock's acquire
        # allocates nothing, where Event.wait makes a lock, a bound method and a tuple on
        # every wake-up, which a test counting ``gc.get_objects()`` would see come and go.
        self._closed = _thread.allocate_lock()
        self._closed.acquire()
        self._ended = start_hidden(self._run)

    def add(self, result: TestResult) -> None:
        with self._lock:
            self._pending.append(result)
            self._sent.clear()
        if monotonic() - self._last_send >= _FLUSH_DELAY:
            self.flush()

    def flush(self) -> None:
        self._send(keep=False)

    def _send(self, *, keep: bool) -> None:
        # The lists are never replaced, only emptied: from the backstop thread, while a test
        # runs, the results sent stay referenced (``_sent``) until the test thread adds the
        # next one, so a test counting ``gc.get_objects()`` sees no object come or go.
        with self._lock:
            batch = tuple(self._pending)
            if keep:
                self._sent.extend(self._pending)
            else:
                self._sent.clear()
            self._pending.clear()
        if batch:
            if self._checkpoint is not None:
                self._checkpoint()
            self._last_send = monotonic()
            self._sender.send(TestsReported(batch))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # closed already
            self._closed.release()
        self._ended.wait(1.0)
        self.flush()

    def _run(self) -> None:
        wait = self._closed.acquire  # bound once: a bound method per wake-up is an object
        while not wait(*_BACKSTOP_WAIT):
            if self._parent_pid and getppid() != self._parent_pid:
                # A controller killed outright cannot stop us; never outlive it.
                _exit(ORPHANED)
            quiet = monotonic() - self._last_send
            if self._pending and quiet >= _BACKSTOP and self._checkpoint is None:
                self._send(keep=True)  # the test thread is inside a long test
            elif quiet >= HEARTBEAT_INTERVAL:
                self._last_send = monotonic()
                self._sender.send(AgentAlive())  # prove we are still here


@final
class OutputForwarding:
    """With ``-s``, what tests print to stdout (fd 1) goes line by line to the controller.

    The agent's own terminal reporter must not be forwarded: ``prepare`` points sys.stdout at
    devnull before pytest starts, so the reporter binds to that; ``start`` then sends fd 1
    through a pipe to the controller and points sys.stdout at fd 1 again.
    """

    def __init__(self, sender: Sender, *, enabled: bool) -> None:
        self._sender = sender
        self._enabled = enabled
        self._saved_fd: int | None = None
        self._ended: threading.Event | None = None
        self._devnull: IO[str] | None = None

    def prepare(self) -> None:
        if self._enabled:
            self._devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the agent
            sys.stdout = self._devnull

    def start(self) -> None:
        if not self._enabled or self._saved_fd is not None:
            return
        read_fd, write_fd = os.pipe()
        self._saved_fd = os.dup(1)
        os.dup2(write_fd, 1)
        os.close(write_fd)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        self._ended = start_hidden(self._pump, read_fd)

    def stop(self) -> None:
        if self._saved_fd is None:
            return
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os.dup2(self._saved_fd, 1)  # closes our last write end: the pump sees EOF
        os.close(self._saved_fd)
        self._saved_fd = None
        if self._ended is not None:
            self._ended.wait(2.0)

    def _pump(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "r", errors="replace") as stream:
            for line in stream:
                self._sender.send(OutputForwarded(line))
