"""Where each local agent is: the test it runs and since when, in a small file per agent.

An agent that dies cannot say which test killed it, and its last reports may still be in its
buffer; the controller reads the agent's slot instead. The agent also points faulthandler at a
file next to it, so a segfault leaves its traceback for the controller to report.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import signal
import struct
import time
from pathlib import Path
from typing import IO, Final, final

# Bound at import: a test that patches time.time or os.pwrite must not see our calls.
_pwrite: Final = os.pwrite
_now: Final = time.time
_SLOT: Final = struct.Struct("<qd")  # test index (-1: between tests), wall time it started
_IDLE: Final = -1


def slot_path(directory: str | Path, agent_id: str) -> Path:
    return Path(directory) / f"{agent_id}.slot"


def crash_log_path(directory: str | Path, agent_id: str) -> Path:
    return Path(directory) / f"{agent_id}.faulthandler"


@final
class Slot:
    """The agent's side: one pwrite per test start and end."""

    def __init__(self, directory: str, agent_id: str) -> None:
        self._fd = os.open(slot_path(directory, agent_id), os.O_RDWR | os.O_CREAT, 0o600)
        self._crash_log_path = crash_log_path(directory, agent_id)
        self._crash_log: IO[str] | None = None
        self.idle()

    def arm_crash_log(self) -> None:
        """Send faulthandler's output to our file; after pytest configured its own."""
        if self._crash_log is None:
            self._crash_log = open(self._crash_log_path, "w")  # noqa: SIM115 - lives with us
        faulthandler.enable(file=self._crash_log, all_threads=True)
        self.arm_stack_dump()

    def arm_stack_dump(self) -> None:
        """SIGUSR1 makes faulthandler dump every thread's stack into the log (for timeouts)."""
        if self._crash_log is not None and hasattr(signal, "SIGUSR1"):
            faulthandler.register(signal.SIGUSR1, file=self._crash_log, all_threads=True)

    def running(self, index: int) -> None:
        _pwrite(self._fd, _SLOT.pack(index, _now()), 0)

    def idle(self) -> None:
        _pwrite(self._fd, _SLOT.pack(_IDLE, _now()), 0)


def read_slot(directory: str | Path, agent_id: str) -> tuple[int | None, float]:
    """(index of the running test or None, when it started or the agent went idle)."""
    try:
        data = slot_path(directory, agent_id).read_bytes()
    except OSError:
        return None, 0.0
    return parse_slot(data)


def parse_slot(data: bytes) -> tuple[int | None, float]:
    """A slot file's content, read here or on a remote host."""
    if len(data) < _SLOT.size:
        return None, 0.0
    index, since = _SLOT.unpack_from(data)
    return (None if index == _IDLE else int(index)), float(since)


def stderr_path(directory: str | Path, agent_id: str) -> Path:
    return Path(directory) / f"{agent_id}.stderr"


def capture_stderr(directory: str, agent_id: str) -> None:
    """The agent's fd 2 goes to a file of its own: what a plugin writes there before it
    ends the process (pytest-timeout's stacks, say) reaches the crash report, and what is
    left when the agent ends normally is shown by the controller."""
    fd = os.open(stderr_path(directory, agent_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def take_stderr(directory: str | Path, agent_id: str, limit: int = 20_000) -> str:
    """What the agent wrote to its stderr (its last ``limit`` characters; from
    pytest-timeout's first banner when it is there), and forget it."""
    path = stderr_path(directory, agent_id)
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace")
        path.unlink()
        found = _PYTEST_TIMEOUT.search(text)
        if found is not None:
            return text[found.start() :][:limit]
        return text[-limit:]
    return ""


# pytest-timeout's own banner, printed before it ends the process (thread method) or fails
# the test (signal method).
_PYTEST_TIMEOUT: Final = re.compile(r"^\++ Timeout \++$", re.MULTILINE)


def timed_out_by_plugin(stderr: str) -> bool:
    """Whether pytest-timeout ended the agent: its banner is in the agent's stderr."""
    return bool(_PYTEST_TIMEOUT.search(stderr))


def read_crash_log(directory: str | Path, agent_id: str, limit: int = 20_000) -> str:
    """What faulthandler wrote when the agent died (empty if nothing)."""
    with contextlib.suppress(OSError):
        text = crash_log_path(directory, agent_id).read_text(errors="replace")
        return text[-limit:].strip()
    return ""


def crash_summary(text: str, *, stuck: bool = False) -> str:
    """The fatal error line and one thread's frames above pytest's own, most recent first.

    After a crash that thread is the one that crashed (faulthandler's "Current thread"). After
    a timeout (``stuck``) it is the one running the test: the dump signal lands on whichever
    thread the kernel picks, often the agent's idle main thread.
    """
    lines = text.splitlines()
    head = [line for line in lines[:3] if line.startswith("Fatal Python error")]
    blocks = _thread_blocks(lines)
    if not blocks:
        return text
    chosen = next((block for block in blocks if block[0].startswith("Current thread")), None)
    if stuck or chosen is None:
        testing = [block for block in blocks if any(_is_pytest_frame(line) for line in block)]
        chosen = testing[0] if testing else chosen or blocks[0]
    frames: list[str] = []
    for line in chosen[1:]:
        if _is_pytest_frame(line):
            break
        frames.append(line)
    return "\n".join([*head, chosen[0], *frames])


def _thread_blocks(lines: list[str]) -> list[list[str]]:
    """faulthandler's dump split per thread: a header line, then that thread's frames."""
    blocks: list[list[str]] = []
    open_block = False
    for line in lines:
        if line.startswith(("Current thread ", "Thread ")):
            blocks.append([line])
            open_block = True
        elif not line.strip():
            open_block = False  # a blank line ends a thread's frames
        elif open_block:
            blocks[-1].append(line)
    return blocks


def _is_pytest_frame(line: str) -> bool:
    return "/_pytest/" in line or "/pluggy/" in line
