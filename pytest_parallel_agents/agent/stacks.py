"""pytest-timeout's stack dumps in an agent: the threads and frames a plain run's dump shows."""

from __future__ import annotations

import re
import sys
import threading
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from pytest_parallel_agents.agent.channel import OWN_THREADS
from pytest_parallel_agents.compat import gateway_namespace

# pytest-timeout titles each thread's stack so (``dump_stacks``, 1.x to 2.4).
_TITLE: Final = re.compile(r"Stack of .* \((\d+)\)")
_OUR_PACKAGES: Final = ("execnet", "pytest_parallel_agents")
# Code the controller runs through ``remote_exec`` (our bootstrap) has this module name.
_CHANNELEXEC: Final = "__channelexec__"
_WRAPPED: Final = "_parallel_agents_wrapped"

# A spawned agent runs execnet from source sent over the pipe (its frames say "<string>"), in a
# namespace of its own; ``note_gateway`` records that namespace.
_gateway_namespace: dict[str, Any] | None = None


def note_gateway(channel: object) -> None:
    """Remember the namespace execnet's code runs in, to know its frames in any agent."""
    global _gateway_namespace
    namespace = gateway_namespace(channel)
    if namespace is not None:
        _gateway_namespace = namespace


def hide_agent_stacks() -> None:
    """In an agent, make pytest-timeout's stack dumps show what they show in a plain run.

    ``pytest_timeout.dump_stacks`` (private; both its signal and its thread method call it
    through the module, at the moment of the timeout) prints every thread but the current one.
    In an agent that includes execnet's IO thread and our own hidden threads, as
    ``<unknown>`` stacks, and puts the agent's machinery (execnet, our session loop) in the
    middle of the test's thread's stack. The wrapper hands the original a terminal that leaves
    those out; any other change pytest-timeout makes to its output passes through untouched.
    Only an agent calls this: the controller and plain runs keep the original.
    """
    # pytest-timeout has no hook for this, hence its private function: a version without it
    # keeps its own output.
    module = sys.modules.get("pytest_timeout")
    original = getattr(module, "dump_stacks", None)
    if module is None or not callable(original) or getattr(original, _WRAPPED, False):
        return

    def dump_stacks(terminal: Any) -> None:
        original(_AgentFiltered(terminal))

    setattr(dump_stacks, _WRAPPED, True)
    dump_stacks.__wrapped__ = original  # type: ignore[attr-defined]
    dump_stacks.__doc__ = original.__doc__
    module.dump_stacks = dump_stacks  # type: ignore[attr-defined]


def _ours(frame: FrameType) -> bool:
    namespace = frame.f_globals
    if namespace is _gateway_namespace:
        return True
    name = str(namespace.get("__name__", ""))
    return name == _CHANNELEXEC or name.partition(".")[0] in _OUR_PACKAGES


def _judge(ident: int) -> tuple[bool, list[tuple[str, bool]] | None]:
    """Whether to hide the thread, else its stack's entries (outermost first) when some are
    ours: each formatted as pytest-timeout formats it, and whether it is one of our frames."""
    if ident in OWN_THREADS:
        return True, None
    frame = sys._current_frames().get(ident)
    if frame is None:
        return False, None  # ended meanwhile
    frames: list[FrameType] = []
    current: FrameType | None = frame
    while current is not None:
        frames.append(current)
        current = current.f_back
    frames.reverse()
    # Threads ``threading`` knows are the test's, and the main thread; execnet starts its own
    # below ``threading``, as we do (``start_hidden``, which records them).
    named = any(thread.ident == ident for thread in threading.enumerate())
    if not named and _ours(frames[0]):
        return True, None
    if not any(_ours(f) for f in frames):
        return False, None
    return False, [("".join(traceback.format_stack(f, limit=1)), _ours(f)) for f in frames]


class _AgentFiltered:
    """The terminal pytest-timeout's ``dump_stacks`` writes to: hidden threads' sections
    dropped, our frames taken out of the others' stacks (up to the first entry that differs
    from what we saw: a thread that moved on meanwhile keeps the rest of its stack as is).

    Each thread is judged when its section starts, just before pytest-timeout formats its
    stack: a thread started since pytest-timeout listed them is judged as well.
    """

    def __init__(self, terminal: Any) -> None:
        self._terminal = terminal
        self._skipping = False
        self._entries: list[tuple[str, bool]] | None = None

    def sep(self, sepchar: str, title: str | None = None, *args: Any, **kwargs: Any) -> None:
        found = _TITLE.fullmatch(title or "")
        self._skipping, self._entries = _judge(int(found[1])) if found else (False, None)
        if not self._skipping:
            self._terminal.sep(sepchar, title, *args, **kwargs)

    def write(self, text: str, *args: Any, **kwargs: Any) -> None:
        if self._skipping:
            return
        if self._entries is not None:
            text = _without_ours(text, self._entries)
        self._terminal.write(text, *args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self._terminal, name)  # type: ignore[no-any-return]


def _without_ours(text: str, entries: list[tuple[str, bool]]) -> str:
    kept: list[str] = []
    at = 0
    for entry, ours in entries:
        if not text.startswith(entry, at):
            break
        if not ours:
            kept.append(entry)
        at += len(entry)
    return "".join(kept) + text[at:]
