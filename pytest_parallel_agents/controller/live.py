"""The live view: a few lines below the progress, redrawn in place while agents run.

Everything the controller writes to the terminal goes through pytest's terminal writer,
whose stream is swapped for a ``LiveStream`` for the run: before any output the stream
erases the live lines (the cursor never leaves the end of the output, so the output lands
where it would have), and the loop redraws them between events. At the end they are erased:
the terminal shows what a plain run's would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TextIO, final

# How often the lines are redrawn at most (and so how often the terminal gets writes).
REDRAW_INTERVAL: Final = 0.25
# Agent lines shown at most; the rest are summed up in one line.
MAX_AGENT_LINES: Final = 8
_ERASE_BELOW: Final = "\x1b[J"
_ANSI: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def visible_width(text: str) -> int:
    return len(_ANSI.sub("", text))


def wanted(setting: str, *, isatty: bool, verbosity: int, environ: dict[str, str]) -> bool:
    """Whether to show the live view: ``on`` wherever output is a terminal; ``auto`` (the
    default) there too, unless in CI (``CI`` set) or quiet (``-q``)."""
    if setting == "off" or not isatty or environ.get("TERM") == "dumb":
        return False
    if setting == "on":
        return True
    return verbosity >= 0 and not environ.get("CI")


@final
@dataclass(frozen=True)
class Running:
    """An agent and what it runs (``test`` None: between tests, or starting)."""

    agent: str
    test: str | None
    seconds: float


def render_lines(
    running: Sequence[Running],
    *,
    done: int,
    total: int,
    failed: int,
    left: float | None,
    width: int,
) -> list[str]:
    """The live lines, each cut to fit ``width`` columns (a wrapped line would break the
    redraw)."""
    lines = []
    shown = running[:MAX_AGENT_LINES]
    name_width = max((len(r.agent) for r in shown), default=0)
    for r in shown:
        what = f"{r.test}  {r.seconds:.1f} s" if r.test is not None else "waiting"
        lines.append(f"  {r.agent:<{name_width}}  {what}")
    if len(running) > len(shown):
        lines.append(f"  … and {len(running) - len(shown)} more agents")
    summary = f"  {done}/{total} tests done"
    if failed:
        summary += f", {failed} failed"
    if left is not None:
        summary += f", about {_duration(left)} left"
    lines.append(summary)
    return [_cut(line, width - 1) for line in lines]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _cut(line: str, width: int) -> str:
    if width <= 1:
        return ""
    return line if len(line) <= width else line[: width - 1] + "…"


@final
class LiveStream:
    """The terminal writer's stream while the live view is on: output erases the lines
    first; ``draw`` puts them back below the output, the cursor left where output goes."""

    def __init__(self, stream: TextIO, width: Callable[[], int]) -> None:
        self._stream = stream
        self._width = width
        self._column = 0
        self._drawn = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)

    def write(self, text: str) -> int:
        if self._drawn:
            self._stream.write(_ERASE_BELOW)
            self._drawn = False
        written = self._stream.write(text)
        last = max(text.rfind("\n"), text.rfind("\r"))
        if last >= 0:
            self._column = visible_width(text[last + 1 :])
        else:
            self._column += visible_width(text)
        return written

    def flush(self) -> None:
        self._stream.flush()

    def draw(self, lines: Sequence[str]) -> None:
        """Show ``lines`` below the current output line."""
        if not lines or self._column >= self._width():
            return  # at the right margin the terminal's wrap state is unknown: skip a frame
        out = [_ERASE_BELOW if self._drawn else "", "\n", "\n".join(lines)]
        # Back up to where the output stands: up the lines, to its column.
        out.append(f"\x1b[{len(lines)}A\x1b[{self._column + 1}G")
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn = True

    def erase(self) -> None:
        if self._drawn:
            self._stream.write(_ERASE_BELOW)
            self._stream.flush()
            self._drawn = False

    @property
    def stream(self) -> TextIO:
        return self._stream


@final
class LiveView:
    """What the controller's loop calls: ``tick`` between events, ``close`` at the end."""

    def __init__(
        self,
        stream: LiveStream,
        width: Callable[[], int],
        *,
        total: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self._width = width
        self._clock = clock
        self._wall_clock = wall_clock
        self.total = total
        self._last = -REDRAW_INTERVAL
        self._first_done: float | None = None
        self._started = clock()

    def tick(
        self,
        running: Sequence[tuple[str, str | None, float | None]],
        *,
        done: int,
        failed: int,
        predicted_left: float | None,
        agents: int,
    ) -> None:
        """Redraw, at most every ``REDRAW_INTERVAL``. ``running``: (agent, test, since in
        the wall clock); ``predicted_left``: the durations' seconds of the tests not done."""
        now = self._clock()
        if now - self._last < REDRAW_INTERVAL:
            return
        self._last = now
        wall = self._wall_clock()
        rows = [
            Running(agent, test, max(0.0, wall - since) if since is not None else 0.0)
            for agent, test, since in running
        ]
        self.stream.draw(
            render_lines(
                rows,
                done=done,
                total=self.total,
                failed=failed,
                left=self._left(now, done, predicted_left, agents),
                width=self._width(),
            )
        )

    def _left(self, now: float, done: int, predicted: float | None, agents: int) -> float | None:
        if done >= self.total:
            return None
        if predicted is not None and agents:
            return predicted / agents
        if done < 3:
            return None  # too few to tell a rate
        elapsed = now - self._started
        return elapsed / done * (self.total - done)

    def close(self) -> None:
        self.stream.erase()
