"""A plain run with the plugin installed imports no execnet, controller, agent or coverage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The plugin's modules a plain run may import: the entry module and what options need.
PLAIN = {
    "pytest_parallel_agents",
    "pytest_parallel_agents.plugin",
    "pytest_parallel_agents.options",
    "pytest_parallel_agents.hookspecs",
    "pytest_parallel_agents.state",
    "pytest_parallel_agents.files",
    "pytest_parallel_agents.coverage",
    "pytest_parallel_agents.coverage.options",
    "pytest_parallel_agents.coverage.plugin",
    "pytest_parallel_agents.planning",
    "pytest_parallel_agents.planning.lpt",
    "pytest_parallel_agents.planning.sharding",
    "pytest_parallel_agents.planning.suites",
    "pytest_parallel_agents.planning.txspecs",
    "pytest_parallel_agents.transport",
    "pytest_parallel_agents.transport.protocol",
}
HEAVY = ("execnet", "coverage", "sqlite3", "concurrent.futures", "filelock")

# Runs pytest with only this plugin loaded (other installed plugins import execnet or
# coverage themselves) and writes what was imported when the session ended.
_RUNNER = """
import json, sys
import pytest

class Spy:
    def pytest_unconfigure(self, config):
        names = sorted(sys.modules)
        with open(sys.argv[1], "w") as out:
            json.dump(names, out)

sys.exit(pytest.main(sys.argv[2:], plugins=[Spy()]))
"""


def _imported(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    record = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(record), "-p", "pytest_parallel_agents.plugin", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 5), done.stdout + done.stderr
    return done.returncode, set(json.loads(record.read_text()))


@pytest.mark.parametrize("args", [(), ("-q", "-p", "no:cacheprovider"), ("--agents", "0")])
def test_a_plain_run_imports_only_the_entry_modules(tmp_path: Path, args: tuple[str, ...]) -> None:
    _, modules = _imported(tmp_path, *args)
    ours = {m for m in modules if m.split(".")[0] == "pytest_parallel_agents"}
    assert ours <= PLAIN, sorted(ours - PLAIN)
    heavy = sorted(m for m in modules if m in HEAVY)
    assert heavy == [], heavy


def test_a_parallel_run_imports_the_layers(tmp_path: Path) -> None:
    """The check above can fail: a run with agents imports what a plain run does not."""
    _, modules = _imported(tmp_path, "--agents", "2", "--agents-items", "1")
    assert "execnet" in modules
    assert "pytest_parallel_agents.controller.loop" in modules
