"""pytest-xdist installed beside the plugin: every other ecosystem run has it loaded; here
``-n`` with ``--agents`` is refused, ``xdist_group`` is honoured like ``agents_group``, and the
outcomes are those of a plain run and of ``-n 2``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    Run,
    assert_same_outcomes,
    run_pytest,
    write_files,
)

PROJECT = {
    "test_grouped.py": """
        import os
        from pathlib import Path

        import pytest


        def note(name):
            folder = Path(os.environ["RAN"])
            agent = os.environ.get("PYTEST_AGENT_ID", "plain")
            with open(folder / "log", "a") as log:
                log.write(f"{agent} {name}\\n")


        @pytest.mark.xdist_group("database")
        @pytest.mark.parametrize("n", range(4))
        def test_in_group(n):
            note(f"group{n}")


        @pytest.mark.parametrize("n", range(4))
        def test_free(n):
            note(f"free{n}")
            assert n != 3
    """,
}


def _run(project: Path, mode: str, tag: str = "", **kwargs: Any) -> tuple[Run, list[str]]:
    ran = project.parent / f"{project.name}-ran-{mode}{tag}"
    ran.mkdir()
    run = run_pytest(project, mode, env={"RAN": str(ran)}, tag=tag, **kwargs)
    log = ran / "log"
    return run, log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("xdist"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> Run:
    run, _ = _run(project, "plain")
    assert run.summary == "1 failed, 7 passed", run.describe()
    return run


def test_numprocesses_with_agents_is_refused(project: Path) -> None:
    run = run_pytest(project, "fork2", "-n", "2")
    assert run.returncode == 4, run.describe()
    assert "-n/--numprocesses" in run.stderr, run.describe()
    assert "Traceback" not in run.stderr + run.stdout, run.describe()


def test_same_as_xdist(project: Path, plain: Run) -> None:
    xdist, _ = _run(project, "plain", "-xdist", pytest_args=("-n", "2", "--dist", "loadgroup"))
    assert_same_outcomes(plain, xdist, parallel=False)


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_xdist_group_on_one_agent(project: Path, plain: Run, mode: str) -> None:
    run, log = _run(project, mode)
    assert_same_outcomes(plain, run)
    group = [line.split() for line in log if " group" in line]
    assert [name for _, name in group] == ["group0", "group1", "group2", "group3"], log
    assert len({agent for agent, _ in group}) == 1, log
