"""Uses of pytest's private attributes, each explained, in one place to check on upgrades."""

from __future__ import annotations

import pytest


def show_interrupt_at(config: pytest.Config, longrepr: object) -> bool:
    """Make the terminal's KeyboardInterrupt line name where an agent's test was.

    The controller's own interrupt happened in its event loop, so pytest's terminal would
    show a line in ``threading.py``; a plain run shows the running test's line. pytest keeps
    the interrupt's repr in ``TerminalReporter._keyboardinterrupt_memo`` (pytest 8 and 9),
    set by ``pytest_keyboard_interrupt`` and printed at ``pytest_sessionfinish``, with no
    public way to give another. False when that attribute is not there (nothing changed).
    """
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or getattr(terminal, "_keyboardinterrupt_memo", None) is None:
        return False
    if getattr(longrepr, "reprcrash", None) is None:
        return False
    terminal._keyboardinterrupt_memo = longrepr
    return True
