"""The live view's decisions and its terminal writes, on a fake clock and a string stream."""

from __future__ import annotations

import io

import pytest

from pytest_parallel_agents.controller.live import (
    LiveStream,
    LiveView,
    Running,
    render_lines,
    visible_width,
    wanted,
)


@pytest.mark.parametrize(
    ("setting", "isatty", "verbosity", "environ", "shown"),
    [
        ("auto", True, 0, {}, True),
        ("auto", True, 0, {"CI": "true"}, False),  # kept out of CI logs
        ("auto", True, -1, {}, False),  # -q
        ("auto", False, 0, {}, False),  # piped
        ("on", True, -1, {"CI": "1"}, True),
        ("on", False, 0, {}, False),  # never into a pipe
        ("on", True, 0, {"TERM": "dumb"}, False),
        ("off", True, 0, {}, False),
    ],
)
def test_when_it_shows(
    setting: str, isatty: bool, verbosity: int, environ: dict[str, str], shown: bool
) -> None:
    assert wanted(setting, isatty=isatty, verbosity=verbosity, environ=environ) is shown


def test_lines_fit_the_terminal_and_sum_up_many_agents() -> None:
    running = [Running(f"unit-{n}", f"tests/test_{n}.py::test_{'x' * 80}", 1.25) for n in range(10)]
    lines = render_lines(running, done=5, total=40, failed=2, left=75.0, width=60)
    assert len(lines) == 10  # 8 agents, "and 2 more", the summary
    assert all(len(line) <= 59 for line in lines)
    assert lines[0].startswith("  unit-0  tests/test_0.py::test_x") and lines[0].endswith("…")
    assert lines[8] == "  … and 2 more agents"
    assert lines[9] == "  5/40 tests done, 2 failed, about 1 min 15 s left"
    idle = render_lines(
        [Running("unit-0", None, 0.0)], done=0, total=1, failed=0, left=None, width=80
    )
    assert idle == ["  unit-0  waiting", "  0/1 tests done"]


def test_output_erases_the_lines_and_they_come_back_below_it() -> None:
    out = io.StringIO()
    stream = LiveStream(out, lambda: 80)
    stream.write("test_a.py \x1b[32m..\x1b[0m")
    assert visible_width("test_a.py \x1b[32m..\x1b[0m") == 12
    stream.draw(["  unit-0  test_a.py::t  0.1 s", "  2/9 tests done"])
    # Below the output line, then back up two lines to column 13, where output goes on.
    assert out.getvalue().endswith(
        "\n  unit-0  test_a.py::t  0.1 s\n  2/9 tests done\x1b[2A\x1b[13G"
    )
    mark = len(out.getvalue())
    stream.write(".")
    assert out.getvalue()[mark:] == "\x1b[J."  # erased before the output, nothing else
    stream.write("\nnext line")
    stream.draw(["  3/9 tests done"])
    assert out.getvalue().endswith("\n  3/9 tests done\x1b[1A\x1b[10G")
    stream.erase()
    assert out.getvalue().endswith("\x1b[J")
    stream.erase()  # nothing drawn: nothing written
    assert out.getvalue().endswith("G\x1b[J")


def test_at_the_right_margin_a_frame_is_skipped() -> None:
    out = io.StringIO()
    stream = LiveStream(out, lambda: 10)
    stream.write("x" * 10)
    stream.draw(["  1/2 tests done"])
    assert out.getvalue() == "x" * 10


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_redraws_are_throttled_and_the_time_left_comes_from_the_rate_or_durations() -> None:
    out = io.StringIO()
    clock, wall = Clock(), Clock()
    view = LiveView(LiveStream(out, lambda: 80), lambda: 80, total=10, clock=clock, wall_clock=wall)
    wall.now = 100.0
    clock.now = 1.0
    view.tick([("unit-0", "t.py::a", 98.5)], done=2, failed=0, predicted_left=None, agents=1)
    assert "unit-0  t.py::a  1.5 s" in out.getvalue()
    assert "2/10 tests done\x1b" in out.getvalue()  # too few done for a rate
    written = len(out.getvalue())
    clock.now = 1.1
    view.tick([], done=3, failed=0, predicted_left=None, agents=1)
    assert len(out.getvalue()) == written  # within the interval: no redraw
    clock.now = 2.0
    view.tick([], done=4, failed=1, predicted_left=None, agents=1)
    assert "4/10 tests done, 1 failed, about 3 s left" in out.getvalue()  # 2 s for 4, 6 left
    clock.now = 3.0
    view.tick([], done=5, failed=1, predicted_left=20.0, agents=2)
    assert "about 10 s left" in out.getvalue()  # the durations, over the agents
    view.close()
    assert out.getvalue().endswith("\x1b[J")
