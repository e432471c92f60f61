"""Per-file progress lines at default verbosity, as a plain run prints them.

A plain run writes ``tests/test_x.py ....  [ 10%]``: one line per file, since it runs a
file's tests one after another. Agents finish tests of several files at once; replayed as
they come, every switch of file would start a new, short line. So each file's letters are
written into a buffer of its own, with pytest's terminal reporter believing it writes one
file's line, and the line goes to the terminal when the file's last test is in (or when the
run ends, for a file an ``-x`` left unfinished).

It drives pytest's ``TerminalReporter`` and ``TerminalWriter`` through attributes that are
not public (``compat.terminal_writer``, ``compat.fill_progress``); ``FileProgress.create``
returns None where they are missing, and the output then is simply not grouped.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, final

import pytest

from pytest_parallel_agents import compat


@final
@dataclass
class _Line:
    """One file's line while its tests come in."""

    buffer: io.StringIO = field(default_factory=io.StringIO)
    current_line: str = ""
    fspath: Any = None  # what the reporter keeps in ``currentfspath`` for this file
    left: int = 0


@final
class FileProgress:
    """Routes the terminal output of each replayed test into its file's line."""

    def __init__(self, terminal: Any, writer: Any, files: Counter[str]) -> None:
        self._terminal = terminal
        self._writer = writer
        self._lines: dict[str, _Line] = {name: _Line(left=n) for name, n in files.items()}

    @classmethod
    def create(cls, config: pytest.Config, items: Sequence[pytest.Item]) -> FileProgress | None:
        """Grouping for this run, or None where a plain run prints no per-file lines."""
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None or not getattr(terminal, "showfspath", False):
            return None
        if getattr(terminal, "showlongtestinfo", True):
            return None  # -v: a line per test, nothing to group
        writer = compat.terminal_writer(terminal)
        if writer is None or not compat.can_fill_progress(terminal):
            return None
        return cls(terminal, writer, Counter(_file_of(item.nodeid) for item in items))

    @contextlib.contextmanager
    def test(self, nodeid: str, *, last: bool = True) -> Iterator[None]:
        """Around the replay of one test: its output goes to its file's line.

        ``last=False``: an attempt before the test's result (a rerun), which its file's line
        still waits for.
        """
        line = self._lines.get(_file_of(nodeid))
        if line is None:
            yield
            return
        terminal, writer = self._terminal, self._writer
        saved = (compat.writer_stream(writer), compat.writer_line(writer), terminal.currentfspath)
        compat.set_writer_stream(writer, line.buffer)
        compat.set_writer_line(writer, line.current_line)
        # None: the reporter starts the file's line (a newline, then the path) by itself.
        terminal.currentfspath = line.fspath
        try:
            yield
        finally:
            line.fspath = terminal.currentfspath
            line.current_line = compat.writer_line(writer)
            compat.set_writer_stream(writer, saved[0])
            compat.set_writer_line(writer, saved[1])
            terminal.currentfspath = saved[2]
        if not last:
            return
        line.left -= 1
        if line.left == 0:
            self._finish(line)

    def finish_all(self) -> None:
        """Write the lines of files whose tests did not all come in (-x, Ctrl-C)."""
        for line in self._lines.values():
            if line.left > 0 and line.fspath is not None:
                line.left = 0
                self._finish(line)

    def _finish(self, line: _Line) -> None:
        terminal, writer = self._terminal, self._writer
        if line.fspath is None:
            return  # nothing of the file was written
        saved_file = compat.writer_stream(writer)
        compat.set_writer_stream(writer, line.buffer)
        compat.set_writer_line(writer, line.current_line)
        try:
            compat.fill_progress(terminal)
        finally:
            line.current_line = compat.writer_line(writer)
            compat.set_writer_stream(writer, saved_file)
        saved_file.write(line.buffer.getvalue())
        saved_file.flush()
        line.buffer = io.StringIO()
        compat.set_writer_line(writer, line.current_line)
        terminal.currentfspath = line.fspath


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]
