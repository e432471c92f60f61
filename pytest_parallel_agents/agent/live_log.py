"""Live logging (``log_cli``) under agents: records taken per phase, written by the controller."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final, TypeAlias, final

import pytest

from pytest_parallel_agents import compat

# Where a phase's live log records travel: a key of that phase's serialised report, taken
# out again before the controller rebuilds the report (pytest would make it an attribute).
LIVE_LOG_KEY: Final = "parallel_agents_live_log"

# A LogRecord's ``__dict__`` with builtin values only, the message formatted already.
WireRecord: TypeAlias = dict[str, Any]

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def write_records(handler: compat.LiveHandler, when: str, records: Sequence[WireRecord]) -> None:
    """Write an agent's records of one phase as the controller's live logging would."""
    handler.set_when(when)
    for data in records:
        # handle(), not the logger: the agent's handler already filtered by level.
        handler.handle(logging.makeLogRecord(data))


@final
class LiveLogCapture:
    """In an agent: what the live logging handler receives while a test runs, per reported
    phase, as wire data; none of it is written in the agent."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self._formatter = formatter
        self._active = False
        self._pending: list[WireRecord] = []
        self._phases: list[list[WireRecord]] = []

    @classmethod
    def install(cls, config: pytest.Config) -> LiveLogCapture | None:
        """Take what pytest's live logging handler lets through (its level filtering done)
        in place of its ``emit``; the controller passes the records to its own handler
        (``write_records``), so that section headers, format, colours and width are its."""
        handler = compat.live_log_handler(config)
        if handler is None:
            return None
        capture = cls(handler.formatter or logging.Formatter())
        handler.emit = capture.emit
        return capture

    def emit(self, record: logging.LogRecord) -> None:
        if not self._active:
            return  # the agent's own session start and finish: the controller has its own
        data = _to_wire(record, self._formatter)
        if data is not None:
            self._pending.append(data)

    def begin(self) -> None:
        self._pending = []
        self._phases = []
        self._active = True

    def reported(self) -> None:
        """A phase's report is out: the records so far belong to it."""
        self._phases.append(self._pending)
        self._pending = []

    def end(self) -> list[list[WireRecord]] | None:
        """The records of each reported phase, or None when the test logged nothing live.

        Records after the last report (``pytest_runtest_logfinish``) are not shown.
        """
        self._active = False
        phases = self._phases
        self._phases = []
        self._pending = []
        return phases if any(phases) else None


def _to_wire(record: logging.LogRecord, formatter: logging.Formatter) -> WireRecord | None:
    try:
        message = record.getMessage()
    except Exception:
        return None  # pytest's handler would fail to format it too, and drop it silently
    data = {
        key: value if type(value) in _SCALARS else str(value)
        for key, value in record.__dict__.items()
        if key not in ("args", "exc_info")
    }
    data["msg"] = message
    data["args"] = None
    data["exc_info"] = None
    if record.exc_info and not record.exc_text:
        # The traceback objects stay here: their text, as the formatter would append it.
        data["exc_text"] = formatter.formatException(record.exc_info)
    return data
