"""Live logging (``log_cli``) under agents shows each test's live log sections in place."""

from __future__ import annotations

import logging
import pickle
import re
import sys

import pytest
from helpers import compare

from pytest_parallel_agents.agent.live_log import LiveLogCapture

CONFTEST = """
import logging


def pytest_sessionstart(session):
    logging.getLogger("conf").info("session starting")


def pytest_sessionfinish(session):
    logging.getLogger("conf").info("session finishing")
"""

PROJECT = """
import logging

import pytest

log = logging.getLogger("live.{name}")


@pytest.fixture
def resource():
    log.info("setting up {name}")
    log.debug("setup detail {name}")
    yield 1
    log.info("tearing down {name}")
    log.debug("teardown detail {name}")


def test_everywhere(resource):
    log.info("calling %s with %r", "{name}", {{"n": resource}})
    log.debug("call detail {name}")
    log.warning("a warning from {name}")


def test_silent():
    pass


def test_call_only():
    log.info("only the call of {name}")


def test_exception():
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        log.exception("caught in {name}")


@pytest.mark.parametrize("n", range(3))
def test_many(resource, n):
    log.info("many {name} %d", n)


def test_fails(resource):
    log.error("about to fail in {name}")
    assert {fails}, "failing on purpose"
"""

LIVE = ("-o", "log_cli=true", "--log-cli-level=INFO", "-p", "no:cacheprovider")

_TEST_LINE = re.compile(r"^(test_\w+\.py::\S+)")
_PROGRESS = re.compile(r"\s*\[\s*\d+%\]$")
_TIMING = re.compile(r" in [\d.]+s( \([\d:]+\))?")
_SESSIONFINISH = re.compile(r"-+ live log sessionfinish -+$")


def _blocks(lines: list[str]) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """The output before the first test, each test's block (its line up to the next test's,
    without the progress percentages) and what follows the last test (the plugin's own
    lines taken out)."""
    head: list[str] = []
    blocks: dict[str, list[str]] = {}
    tail: list[str] = []
    current: list[str] | None = None
    skipping = False
    for raw in lines:
        # pytest starts the sessionfinish section on the last test's line when that test
        # logged live (and on a line of its own when it did not): which test is last
        # depends on the agents, so the section gets a line of its own here.
        text = _TIMING.sub("", raw)
        found = _SESSIONFINISH.search(text)
        for line in [text[: found.start()], found.group()] if found else [text]:
            line = _PROGRESS.sub("", line).rstrip()
            if line.startswith(("parallel agents:", "- generated xml file")):
                continue
            if re.match(r"^-+ parallel agents -+$", line):
                skipping = True
                continue
            if skipping:
                if not line.startswith("="):
                    continue
                skipping = False
            match = _TEST_LINE.match(line)
            if match:
                assert match.group(1) not in blocks, f"{match.group(1)} shown twice"
                current = blocks[match.group(1)] = []
            elif line.startswith("=") or _SESSIONFINISH.match(line):
                current = tail
            if current is None:
                head.append(line)
            else:
                current.append(line)
    for block in blocks.values():
        while block and not block[-1]:
            block.pop()
    return head, blocks, tail


@pytest.mark.parametrize("verbosity", ["", "-v"])
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_live_log_sections_as_in_a_plain_run(
    pytester: pytest.Pytester, start: str, verbosity: str
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_one=PROJECT.format(name="one", fails="False"),
        test_two=PROJECT.format(name="two", fails="True"),
    )
    args = [a for a in (verbosity, *LIVE) if a]
    agents = ("--agents", "2", "--agents-items", "1", "--agents-min-items", "1")
    plain, parallel = compare(
        pytester, *args, agents_args=(*agents, "--agents-start", start), subprocess=True
    )
    context = f"\n--- plain ---\n{plain.stdout.str()}\n--- agents ---\n{parallel.stdout.str()}"
    head, blocks, tail = _blocks(plain.outlines)

    # The plain run is what this test believes it is: sections by phase, INFO and up only.
    everywhere = blocks["test_one.py::test_everywhere"]
    for expected in (
        "live log setup",
        "INFO     live.one:test_one.py:10 setting up one",
        "live log call",
        "INFO     live.one:test_one.py:18 calling one with {'n': 1}",
        "live log teardown",
        "INFO     live.one:test_one.py:13 tearing down one",
    ):
        assert any(expected in line for line in everywhere), (expected, context)
    assert not any("detail" in line for line in plain.outlines), context
    assert any("ZeroDivisionError" in line for line in blocks["test_two.py::test_exception"])
    assert any("session starting" in line for line in head), context
    assert any("session finishing" in line for line in tail), context
    assert blocks["test_one.py::test_silent"] == ["test_one.py::test_silent PASSED"], context

    parallel_head, parallel_blocks, parallel_tail = _blocks(parallel.outlines)
    assert parallel_head == head, context
    assert sorted(parallel_blocks) == sorted(blocks), context
    for nodeid, block in blocks.items():
        assert parallel_blocks[nodeid] == block, (nodeid, context)
    assert parallel_tail == tail, context
    # The agents' own session start and finish logged nothing into the controller's output.
    text = parallel.stdout.str()
    assert text.count("session starting") == 1 and text.count("session finishing") == 1, context


def test_records_cross_as_builtins_and_format_as_the_originals() -> None:
    layout = "%(levelname)s %(name)s %(message)s %(extra_thing)s"
    formatter = logging.Formatter(layout)
    capture = LiveLogCapture(formatter)
    logger = logging.getLogger("wire")

    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        failing = logger.makeRecord(
            "wire",
            logging.ERROR,
            "f.py",
            3,
            "value %r",
            ({"a": Opaque()},),
            sys.exc_info(),
            extra={"extra_thing": Opaque()},
        )
    plain = logger.makeRecord(
        "wire", logging.INFO, "f.py", 4, "n=%d", (5,), None, extra={"extra_thing": 1}
    )
    capture.emit(plain)  # before the test: the agent's own, never sent
    assert capture.end() is None
    capture.begin()
    capture.emit(failing)
    capture.reported()
    capture.reported()
    capture.emit(plain)
    capture.reported()
    phases = capture.end()
    assert phases is not None and [len(p) for p in phases] == [1, 0, 1]
    wire = pickle.loads(pickle.dumps(phases))
    scalars = (str, int, float, bool, type(None))
    assert all(type(v) in scalars for p in wire for r in p for v in r.values())
    for original, data in ((failing, wire[0][0]), (plain, wire[2][0])):
        expected = logging.Formatter(layout).format(original)
        assert formatter.format(logging.makeLogRecord(data)) == expected
