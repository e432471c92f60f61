"""Agent pipes carry whole messages even when signals interrupt the writes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from execnet import gateway_base
from helpers import QUIET_PLUGINS

from pytest_parallel_agents.compat import whole_writes

MESSAGE = bytes(range(256)) * 16_384  # 4 MiB: far beyond a pipe's buffer


def _write_under_signals(whole: bool) -> bytes:
    """Write MESSAGE through an unbuffered pipe, as a forked agent's gateway does, while a
    timer signal with a Python handler fires every millisecond; return what arrived."""
    read_fd, write_fd = os.pipe()
    io = gateway_base.Popen2IO(
        os.fdopen(write_fd, "wb", buffering=0),
        os.fdopen(read_fd, "rb", buffering=0),
        gateway_base.get_execmodel("thread"),
    )
    if whole:
        whole_writes(io)
    received = bytearray()

    def drain() -> None:
        # A slow reader keeps the writer blocked in the kernel, where the signals land.
        while chunk := os.read(read_fd, 65_536):
            received.extend(chunk)
            time.sleep(0.0005)

    reader = threading.Thread(target=drain)
    reader.start()
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        for _ in range(4):
            io.write(MESSAGE)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        io.close_write()
        reader.join(30)
        io.close_read()
    return bytes(received)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_whole_writes_survive_signals() -> None:
    assert _write_under_signals(whole=True) == MESSAGE * 4


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_unwrapped_pipe_writes_are_cut_short_by_signals() -> None:
    """Why whole_writes exists: execnet's one write call loses the rest of a message."""
    assert len(_write_under_signals(whole=False)) < len(MESSAGE) * 4


def test_whole_writes_wraps_once() -> None:
    read_fd, write_fd = os.pipe()
    io = gateway_base.Popen2IO(
        os.fdopen(write_fd, "wb", buffering=0),
        os.fdopen(read_fd, "rb", buffering=0),
        gateway_base.get_execmodel("thread"),
    )
    whole_writes(io)
    first = io._write
    whole_writes(io)
    assert io._write is first
    io.write(b"abc")
    assert os.read(read_fd, 3) == b"abc"
    io.close_write()
    io.close_read()


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_agents_write_whole_messages(pytester: pytest.Pytester, start: str) -> None:
    """Every agent's gateway writes whole messages, spawned ones included (their execnet
    classes come from the bootstrap source, so they are found by name, not by type)."""
    pytester.makepyfile(
        test_pipes="""
        import gc, os
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_gateway_io(i):
            assert os.environ.get("PYTEST_AGENT_ID")
            ios = [o for o in gc.get_objects() if type(o).__name__ == "Popen2IO"]
            assert ios and all(getattr(o, "_writes_whole", False) for o in ios), ios
        """
    )
    result = pytester.runpytest(
        *QUIET_PLUGINS, "--agents=2", "--agents-items=1", f"--agents-start={start}"
    )
    result.assert_outcomes(passed=4)
