"""pytest-randomly: the same seed gives the same results, whichever agent runs a test.

pytest-randomly reseeds `random` before each test phase from the seed and the test's node id,
so a test's random numbers (and here its outcome) do not depend on the order or the process.
A run without ``--randomly-seed`` draws one seed in the controller (the header says which):
the agents must use that one too, as pytest-xdist's workers do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    ALL_AGENT_MODES,
    Run,
    assert_same_outcomes,
    run_pytest,
    write_files,
)

QUIET = ("-p", "no:hypothesispytest")

PROJECT = {
    "conftest.py": """
        import json
        import os
        import random
        from pathlib import Path

        import pytest


        @pytest.fixture
        def drawn(request):
            at_setup = random.random()
            yield at_setup
            record = Path(os.environ["RECORDS"]) / (request.node.name + ".json")
            record.write_text(json.dumps([at_setup, request.node.drawn_in_call]))
    """,
    "test_dice.py": """
        import random

        import pytest


        @pytest.mark.parametrize("n", range(8))
        def test_roll(request, drawn, n):
            request.node.drawn_in_call = random.random()
            assert random.random() < 0.6


        class TestShuffle:
            def test_shuffle(self, request, drawn):
                deck = list(range(10))
                random.shuffle(deck)
                request.node.drawn_in_call = deck[0] / 10
                assert deck[0] % 3 != 0
    """,
    "test_more.py": """
        import random


        def test_choice(request, drawn):
            request.node.drawn_in_call = random.choice([0.1, 0.2, 0.3, 0.4])
            assert random.getrandbits(2) != 0
    """,
}

_HEADER = re.compile(r"^Using --randomly-seed=(\d+)$", re.MULTILINE)


def _records(directory: Path) -> dict[str, list[float]]:
    return {path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")}


def _run(project: Path, mode: str, tag: str, *args: str) -> tuple[Run, dict[str, list[float]]]:
    records = project.parent / f"{project.name}-records-{mode}{tag}"
    records.mkdir()
    run = run_pytest(project, mode, *args, quiet=QUIET, env={"RECORDS": str(records)}, tag=tag)
    found = _records(records)
    assert len(found) == 10, run.describe()
    return run, found


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("randomly"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> tuple[Run, dict[str, list[float]]]:
    run, records = _run(project, "plain", "-seeded", "--randomly-seed=1234")
    assert "Using --randomly-seed=1234" in run.stdout, run.describe()
    # With this seed, some rolls fail: the outcomes themselves depend on the seed.
    assert "failed" in run.summary and "passed" in run.summary, run.describe()
    return run, records


@pytest.mark.parametrize("mode", ALL_AGENT_MODES)
def test_randomly_given_seed_same_as_plain(
    project: Path, plain: tuple[Run, dict[str, list[float]]], mode: str
) -> None:
    plain_run, plain_records = plain
    run, records = _run(project, mode, "-seeded", "--randomly-seed=1234")
    assert "Using --randomly-seed=1234" in run.stdout, run.describe()
    assert_same_outcomes(plain_run, run)
    assert records == plain_records


@pytest.mark.parametrize("mode", [m for m in AGENT_MODES if m != "fork4"])
def test_randomly_drawn_seed_reaches_the_agents(project: Path, mode: str) -> None:
    run, records = _run(project, mode, "-drawn")
    seeds = _HEADER.findall(run.stdout)
    assert len(seeds) == 1, run.describe()
    plain_run, plain_records = _run(project, "plain", f"-{mode}", f"--randomly-seed={seeds[0]}")
    assert_same_outcomes(plain_run, run)
    assert records == plain_records
