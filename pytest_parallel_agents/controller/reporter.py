"""The controller's own terminal output: its warnings, forwarded ``-s`` lines, agents' stderr."""

from __future__ import annotations

import sys
from typing import final

import pytest


@final
class Reporter:
    """What the controller writes itself goes through here, and from here through pytest's
    terminal reporter (which ``-q``, ``--color`` and the terminal width govern), as a plain
    run's output does; without one (``-p no:terminal``) lines are printed.

    Replayed reports are not written here: the replay calls the hooks, and the terminal
    plugin writes them as it writes a plain run's.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._terminal = config.pluginmanager.get_plugin("terminalreporter")

    def warn(self, text: str) -> None:
        """One line of the plugin's own, about the run (an agent that failed to start)."""
        self._line(f"WARNING: pytest-parallel-agents: {text}", yellow=True)

    def forward(self, agent_id: str, text: str) -> None:
        """A line an agent's test printed with ``-s``, prefixed with the agent's id."""
        self._line(f"[{agent_id}] {text.rstrip(chr(10))}")

    def agent_stderr(self, text: str) -> None:
        """What an agent wrote to fd 2 outside any test's capture: to our stderr, as a
        plain run's process writes it there."""
        sys.stderr.write(text)
        sys.stderr.flush()

    def _line(self, line: str, **markup: bool) -> None:
        if self._terminal is not None:
            self._terminal.write_line(line, **markup)
        else:
            print(line)
