"""pytest-timeout's ``dump_stacks`` wrapped in agents: the agent's threads and frames left out."""

from __future__ import annotations

import sys
import threading
import traceback
import types
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_parallel_agents.agent.channel import ResultBuffer, Sender, start_hidden
from pytest_parallel_agents.agent.stacks import hide_agent_stacks


def _dump_stacks(terminal: Any) -> None:
    # pytest-timeout 2.4.0's, word for word (but an f-string).
    current_ident = threading.current_thread().ident
    for thread_ident, frame in sys._current_frames().items():
        if thread_ident == current_ident:
            continue
        for t in threading.enumerate():
            if t.ident == thread_ident:
                thread_name = t.name
                break
        else:
            thread_name = "<unknown>"
        terminal.sep("~", title=f"Stack of {thread_name} ({thread_ident})")
        terminal.write("".join(traceback.format_stack(frame)))


class Terminal:
    def __init__(self) -> None:
        self.titles: list[str] = []
        self.text = ""

    def sep(self, sepchar: str, title: str | None = None, **markup: Any) -> None:
        self.titles.append(str(title))
        self.text += f"{sepchar * 3} {title} {sepchar * 3}\n"

    def write(self, text: str, **markup: Any) -> None:
        self.text += text


@pytest.fixture
def fake_timeout(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("pytest_timeout")
    module.dump_stacks = _dump_stacks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pytest_timeout", module)
    return module


class _Channel:
    def send(self, item: object) -> None:
        pass


@pytest.fixture
def threads() -> Iterator[threading.Event]:
    """A thread of the test's, one of the agent's, and a thread of the test's that is inside
    our code (a result flush calling its checkpoint), all waiting for the event."""
    release = threading.Event()
    inside = threading.Event()

    def checkpoint() -> None:
        inside.set()
        release.wait()

    buffer = ResultBuffer(Sender(_Channel()), checkpoint)
    buffer.add((0, (), None, (), 0.0))

    def flush_through_us() -> None:
        buffer.flush()

    started = [
        threading.Thread(target=release.wait, name="test-thread", daemon=True),
        threading.Thread(target=flush_through_us, name="test-through-us", daemon=True),
    ]
    hidden_running = threading.Event()

    def hidden() -> None:
        hidden_running.set()
        release.wait()

    for thread in started:
        thread.start()
    hidden_done = start_hidden(hidden)
    assert inside.wait(5) and hidden_running.wait(5)
    yield release
    release.set()
    for thread in started:
        thread.join(5)
    hidden_done.wait(5)
    buffer.close()


def test_without_pytest_timeout_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "pytest_timeout", raising=False)
    hide_agent_stacks()
    module = types.ModuleType("pytest_timeout")  # another version, without the function
    monkeypatch.setitem(sys.modules, "pytest_timeout", module)
    hide_agent_stacks()
    assert not hasattr(module, "dump_stacks")


def test_wrapped_once(fake_timeout: types.ModuleType) -> None:
    hide_agent_stacks()
    wrapped = fake_timeout.dump_stacks
    hide_agent_stacks()
    assert fake_timeout.dump_stacks is wrapped
    assert wrapped.__wrapped__ is _dump_stacks


def test_the_agents_threads_and_frames_are_left_out(
    fake_timeout: types.ModuleType, threads: threading.Event
) -> None:
    unwrapped = Terminal()
    fake_timeout.dump_stacks(unwrapped)
    hide_agent_stacks()
    terminal = Terminal()
    fake_timeout.dump_stacks(terminal)

    assert any("<unknown>" in title for title in unwrapped.titles), unwrapped.text
    assert "Stack of <unknown>" not in terminal.text, terminal.text
    names = [title.rpartition(" (")[0] for title in terminal.titles]
    assert "Stack of test-thread" in names, terminal.text
    assert "Stack of test-through-us" in names, terminal.text
    # The test's thread inside our code: its own frames on either side of ours, ours gone.
    assert "agent/channel.py" in unwrapped.text
    assert "agent/channel.py" not in terminal.text, terminal.text
    assert "in flush_through_us" in terminal.text and "in checkpoint" in terminal.text
