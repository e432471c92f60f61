"""Every recipe of the docs, run as written.

The commands are read from the fenced code blocks of README.md and docs/*.md when the tests
run, so a changed doc changes what is run. Each runs through bash in a small project (a
``mypkg`` package and its tests), with ``pytest``, ``pytest-parallel-agents`` and ``python``
resolving to this interpreter. The CI recipes of docs/ci.md are run job by job, with the
variables each CI sets (a GitHub matrix value, GitLab's ``CI_NODE_INDEX``, CircleCI's
``CIRCLE_NODE_INDEX``) and their artifacts passed on as each CI passes them.

Nothing is left out silently: a command that cannot run here is listed in ``NOT_RUN`` with
the reason, and ``test_every_block_is_accounted_for`` fails on a code block no test knows.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
BASH = shutil.which("bash") or "/bin/bash"
COMMAND_TIMEOUT = 120

# Commands of the docs that are not run here, by (doc, pattern matched at the start of the
# command), with the reason. Every entry must still match a command of its doc.
NOT_RUN: tuple[tuple[str, str, str], ...] = (
    ("README.md", r"make (demo|test)\b", "builds .venv and runs the project's whole suite"),
    (
        "README.md",
        r"(pip install|python -m pip wheel)\b",
        "installs into an environment (and needs the package index for the dependencies); "
        "checked by hand in throwaway venvs",
    ),
    (
        "README.md",
        r"pytest --agents-tx .*ssh=",
        "needs the ssh hosts it names; tests/e2e/test_remote.py runs such specs against a "
        "local sshd",
    ),
    (
        "docs/remote.md",
        r"pytest --agents-tx .*ssh=",
        "needs the ssh hosts it names; tests/e2e/test_remote.py runs such specs against a "
        "local sshd",
    ),
    (
        "docs/fidelity.md",
        r"(make realworld|python3? realworld/run\.py)\b",
        "the real-world corpus downloads projects and runs their suites for many minutes",
    ),
    (
        "docs/plugins.md",
        r"(make ecosystem|sh tests/e2e/ecosystem/|\.venv/bin/python -m pytest tests/e2e/ecosystem)",
        "the plugin matrix of this repository: a venv of pinned plugins, a PostgreSQL server "
        "and minutes of runs; `make test` runs it",
    ),
    (
        "docs/performance.md",
        r"python benchmarks/run\.py\b",
        "benchmarks take minutes each; they are the measurements docs/performance.md reports",
    ),
    (
        "docs/ci.md",
        r"pip install\b",
        "installs the project and the plugin (not on PyPI yet): this interpreter has the "
        "plugin, and PYTHONPATH gives the project, as `pip install -e .` would",
    ),
)

# Blocks that are not recipes: (doc, language, the start of the block's text, why).
NOT_RECIPES: tuple[tuple[str, str, str, str], ...] = (
    ("docs/architecture.md", "", "controller (pytest process)", "a diagram of the message flow"),
    ("docs/observability.md", "", '{"event":"agent_ready"', "lines of an events stream"),
    ("docs/observability.md", "", "tests/unit/test_cart.py ...", "what the live view shows"),
    (
        "docs/architecture.md",
        "",
        "plugin.py, options.py",
        "the package's layers, as `ls` shows them",
    ),
    *(
        ("docs/upstream.md", lang, start, "an upstream report's reproduction or wished-for API")
        for lang, start in (
            ("python", "import os, signal, threading, time"),
            ("python", "def write(self, data: bytes) -> None:"),
            ("python", "# test_repro.py"),
            ("", "$ pytest -rA test_repro.py"),
            ("python", "from _pytest.subtests import SubtestContext"),
            ("python", "gateway = group.makegateway_on("),
        )
    ),
)

# Commands that need a plugin besides this one: (pattern anywhere in the command, module).
NEEDS: tuple[tuple[str, str], ...] = (
    (r"(^|\s)(-n|--numprocesses)\s", "xdist"),
    (r"--cov[=\s]", "pytest_cov"),
)

# Quoted output in the docs, checked against a command that prints it: (doc, start of the
# block, command, expected exit status).
QUOTED: tuple[tuple[str, str, str, int], ...] = (
    ("docs/migrating.md", "ERROR: --agents and pytest-xdist", "pytest -n 2 --agents 2", 4),
    ("docs/coverage.md", "pytest-cov's --cov was measured", "pytest --agents auto --cov=mypkg", 0),
)


# --- the docs' code blocks -------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    doc: str
    line: int  # of the opening fence
    lang: str
    text: str
    heading: str  # the closest heading above it

    def __str__(self) -> str:
        return f"{self.doc}:{self.line} ({self.lang or 'no language'})"


def doc_blocks(doc: str) -> list[Block]:
    blocks: list[Block] = []
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    heading, start, lang, body = "", 0, "", []
    inside = False
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            if inside:
                blocks.append(Block(doc, start, lang, "\n".join(body), heading))
                inside = False
            else:
                inside, start, lang, body = True, number, line[3:].strip(), []
        elif inside:
            body.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return blocks


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in doc_blocks(doc)]


def shell_commands(text: str) -> list[str]:
    """The commands of a shell block: lines joined at a trailing backslash, comments left out
    (a comment after a command stays: bash ignores it)."""
    commands: list[str] = []
    pending: list[str] = []
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        if not line.rstrip().endswith("\\"):
            commands.append("\n".join(pending))
            pending = []
    if pending:
        commands.append("\n".join(pending))
    return commands


def one_line(command: str) -> str:
    return " ".join(command.replace("\\\n", " ").split())


def not_run_reason(doc: str, command: str) -> str | None:
    for rule_doc, pattern, reason in NOT_RUN:
        if rule_doc == doc and re.match(pattern, one_line(command)):
            return reason
    return None


def missing_plugin(command: str) -> str | None:
    for pattern, module in NEEDS:
        if re.search(pattern, one_line(command)) and importlib.util.find_spec(module) is None:
            return module
    return None


# --- a YAML subset: what CI recipes are written in ---------------------------------------------

# A mapping key: quoted, or plain (not starting like a sequence item or a flow collection),
# then a colon followed by a space or the end of the line.
_KEY = re.compile(
    r"""^(?P<key>"[^"]*"|'[^']*'|[^\s"'{\[\]#-][^:]*?|-[^\s:][^:]*?)\s*:(?:\s+(?P<rest>.*))?$"""
)
_BLOCK_SCALAR = (">", ">-", "|", "|-")


def load_yaml(text: str) -> Any:
    """Block mappings and sequences, flow collections, folded and literal scalars."""
    return _Yaml(text).parse()


class _Yaml:
    def __init__(self, text: str) -> None:
        self.lines = [
            (len(raw) - len(raw.lstrip(" ")), raw.strip())
            for raw in text.splitlines()
            if raw.strip() and not raw.strip().startswith("#")
        ]
        self.at = 0

    def parse(self) -> Any:
        value = self.block(self.lines[0][0])
        if self.at != len(self.lines):
            raise ValueError(f"YAML not understood from line {self.lines[self.at][1]!r}")
        return value

    def _more(self, indent: int) -> bool:
        return self.at < len(self.lines) and self.lines[self.at][0] == indent

    def block(self, indent: int) -> Any:
        text = self.lines[self.at][1]
        if text == "-" or text.startswith("- "):
            return self.sequence(indent)
        if _KEY.match(text):
            return self.mapping(indent)
        self.at += 1
        return _flow(text)

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while self._more(indent) and (
            self.lines[self.at][1] == "-" or self.lines[self.at][1].startswith("- ")
        ):
            text = self.lines[self.at][1]
            rest = text[1:].lstrip()
            if not rest:
                self.at += 1
                nested = self.at < len(self.lines) and self.lines[self.at][0] > indent
                items.append(self.block(self.lines[self.at][0]) if nested else None)
            elif rest in _BLOCK_SCALAR:
                self.at += 1
                items.append(self.block_scalar(indent, rest))
            else:
                inner = indent + len(text) - len(rest)
                self.lines[self.at] = (inner, rest)
                items.append(self.block(inner))
        return items

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self._more(indent):
            match = _KEY.match(self.lines[self.at][1])
            if match is None:
                raise ValueError(f"YAML not understood: {self.lines[self.at][1]!r}")
            key, rest = str(_scalar(match["key"])), (match["rest"] or "").strip()
            self.at += 1
            if rest in _BLOCK_SCALAR:
                result[key] = self.block_scalar(indent, rest)
            elif rest:
                result[key] = _flow(rest)
            elif self.at < len(self.lines) and (
                self.lines[self.at][0] > indent
                or (self._more(indent) and self.lines[self.at][1].startswith("- "))
            ):
                result[key] = self.block(self.lines[self.at][0])
            else:
                result[key] = None
        return result

    def block_scalar(self, parent: int, style: str) -> str:
        parts: list[str] = []
        while self.at < len(self.lines) and self.lines[self.at][0] > parent:
            parts.append(self.lines[self.at][1])
            self.at += 1
        return (" " if style.startswith(">") else "\n").join(parts)


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if text in ("", "~", "null"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _flow(text: str) -> Any:
    if not text.startswith(("{", "[")):
        return _scalar(text)
    value, end = _flow_node(text, 0)
    if text[end:].strip():
        raise ValueError(f"YAML flow collection not understood: {text!r}")
    return value


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] == " ":
        at += 1
    return at


def _flow_node(text: str, at: int) -> tuple[Any, int]:
    at = _skip(text, at)
    if text[at] in "{[":
        closing = "}" if text[at] == "{" else "]"
        mapping: dict[str, Any] = {}
        items: list[Any] = []
        at += 1
        while True:
            at = _skip(text, at)
            if text[at] == closing:
                return (mapping if closing == "}" else items), at + 1
            value, at = _flow_node(text, at)
            if closing == "}":
                at = _skip(text, at)
                if text[at] != ":":
                    raise ValueError(f"YAML flow mapping not understood: {text!r}")
                mapping[str(value)], at = _flow_node(text, at + 1)
            else:
                items.append(value)
            at = _skip(text, at)
            if text[at] == ",":
                at += 1
    if text[at] in "\"'":
        end = text.index(text[at], at + 1)
        return text[at + 1 : end], end + 1
    end = at
    while end < len(text) and text[end] not in ",]}":
        if text[end] == ":" and (end + 1 == len(text) or text[end + 1] in " ,]}"):
            break
        end += 1
    return _scalar(text[at:end]), end


def ci_commands(node: Any) -> list[str]:
    """The shell commands of a CI configuration: `run:` steps and `script:` lines."""
    if isinstance(node, list):
        return [c for item in node for c in ci_commands(item)]
    if not isinstance(node, dict):
        return []
    commands: list[str] = []
    for key, value in node.items():
        if key == "run" and isinstance(value, str):
            commands.append(value)
        elif key == "run" and isinstance(value, dict):
            commands.append(str(value["command"]))
        elif key == "script":
            commands += [str(line) for line in value]
        else:
            commands += ci_commands(value)
    return commands


def test_yaml_subset() -> None:
    text = """
a:
  b: [1, "two", {c: d:e, f: true}]
  steps:
    - uses: x@v1
      with: {k: "v ${{ m }}"}
    - run: >
        one
        two
      env: {A: b/c}
  script:
  - plain words
  - >
    folded
    text
"""
    assert load_yaml(text) == {
        "a": {
            "b": [1, "two", {"c": "d:e", "f": True}],
            "steps": [
                {"uses": "x@v1", "with": {"k": "v ${{ m }}"}},
                {"run": "one two", "env": {"A": "b/c"}},
            ],
            "script": ["plain words", "folded text"],
        }
    }


# --- the project the recipes run in -----------------------------------------------------------

PROJECT: Mapping[str, str] = {
    "mypkg/__init__.py": "",
    "mypkg/calc.py": (
        "def add(a, b):\n"
        "    return a + b\n\n\n"
        "def sign(x):\n"
        "    if x < 0:\n"
        "        return -1\n"
        "    if x == 0:\n"
        "        return 0\n"
        "    return 1\n"
    ),
    "tests/test_calc.py": (
        "import pytest\n\n"
        "from mypkg.calc import add, sign\n\n\n"
        '@pytest.mark.parametrize("n", range(16))\n'
        "def test_add(n):\n"
        "    assert add(n, 1) == n + 1\n\n\n"
        '@pytest.mark.parametrize("x", [-3, 0, 5])\n'
        "def test_sign(x):\n"
        "    assert sign(x) == (x > 0) - (x < 0)\n"
    ),
    "tests/integration/test_flow.py": (
        "import pytest\n\n"
        "from mypkg.calc import add\n\n\n"
        '@pytest.mark.parametrize("n", range(5))\n'
        "def test_flow(n):\n"
        "    assert add(n, n) == 2 * n\n"
    ),
    "tests/smoke/test_smoke.py": (
        "import pytest\n\n"
        "from mypkg.calc import sign\n\n\n"
        '@pytest.mark.parametrize("x", [1, 2, 3])\n'
        "def test_ping(x):\n"
        "    assert sign(x) == 1\n"
    ),
}
TEST_IDS = frozenset(
    [f"tests/test_calc.py::test_add[{n}]" for n in range(16)]
    + [f"tests/test_calc.py::test_sign[{x}]" for x in (-3, 0, 5)]
    + [f"tests/integration/test_flow.py::test_flow[{n}]" for n in range(5)]
    + [f"tests/smoke/test_smoke.py::test_ping[{x}]" for x in (1, 2, 3)]
)


def write_project(where: Path, files: Mapping[str, str] = PROJECT) -> Path:
    for name, text in files.items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return where


@dataclass(frozen=True)
class Result:
    command: str
    returncode: int
    output: str

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-40:])
        return f"$ {self.command}\n(exit {self.returncode})\n{tail}"


_DROPPED = (
    "PYTEST_",
    "COVERAGE_",
    "COV_CORE_",
    "CI_",
    "GITLAB_",
    "GITHUB_",
    "CIRCLE",
    "BUILDKITE",
    "SYSTEM_JOBPOSITIONINPHASE",
    "SYSTEM_TOTALJOBSINPHASE",
    "TEST_SHARD_",
    "TEST_TOTAL_SHARDS",
    "PYTHONPATH",
    "PYTHON_CPU_COUNT",
)


class Shell:
    """Runs commands as written, with pytest and the console script of this interpreter."""

    def __init__(self, base: Path) -> None:
        self.bin = base / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        python = shlex.quote(sys.executable)
        for name, target in (
            ("pytest", f"{python} -m pytest"),
            ("pytest-parallel-agents", f"{python} -m pytest_parallel_agents"),
            ("python", python),
        ):
            shim = self.bin / name
            shim.write_text(f'#!/bin/sh\nexec {target} "$@"\n', encoding="utf-8")
            shim.chmod(0o755)
        self.tmp = base / "tmp"
        self.tmp.mkdir(exist_ok=True)

    def env(self, project: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith(_DROPPED)}
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            # What `pip install -e .` of the project gives its tests.
            PYTHONPATH=str(project),
            # The same budget for `--agents auto` on every machine (auto honours it).
            PYTHON_CPU_COUNT="2",
            TMPDIR=str(self.tmp),
            # Plugins of the outer environment that cost every inner session seconds.
            PYTEST_ADDOPTS="-p no:hypothesispytest -p no:randomly",
        )
        env.update(extra or {})
        return env

    def run(
        self,
        command: str,
        cwd: Path,
        project: Path | None = None,
        env: Mapping[str, str] | None = None,
        flags: Sequence[str] = (),
    ) -> Result:
        completed = subprocess.run(
            [BASH, *flags, "-c", command],
            cwd=cwd,
            env=self.env(project or cwd, env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return Result(command, completed.returncode, completed.stdout)


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    return Shell(tmp_path / "shell")


# --- what a command leaves behind -------------------------------------------------------------


def _option(command: str, name: str) -> list[str]:
    return re.findall(rf"(?:^|\s){re.escape(name)}[=\s](\S*)", one_line(command))


def check_result(result: Result, cwd: Path) -> list[str]:
    """What is wrong with a recipe's run: its exit status, and the files its options name."""
    problems: list[str] = []
    command = one_line(result.command.split(" #")[0])
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    if "Traceback (most recent call last)" in result.output or "INTERNALERROR" in result.output:
        problems.append("a traceback in the output")
    if problems:
        return problems
    words = command.split()
    if "--agents-plan" in words and "parallel agents plan" not in result.output:
        problems.append("no plan printed")
    for shard in _option(command, "--agents-shard"):
        if shard != "auto" and f"shard {shard} from" not in result.output:
            problems.append(f"no line about shard {shard}")
    for path in _option(command, "--agents-metrics"):
        if json.loads((cwd / path).read_text()).get("schema") is None:
            problems.append(f"{path} is no metrics file")
    for path in _option(command, "--junitxml"):
        if not (cwd / path).is_file():
            problems.append(f"no {path}")
    if "--agents-store-durations" in words:
        durations = (_option(command, "--agents-durations") or [".test_durations"])[-1]
        if not json.loads((cwd / durations).read_text()):
            problems.append(f"no durations in {durations}")
    for report in _option(command, "--agents-cov-report") + _option(command, "--cov-report"):
        kind, _, dest = report.partition(":")
        if kind in ("xml", "json", "lcov", "html") and dest and not (cwd / dest).exists():
            problems.append(f"no {dest}")
        if kind.startswith("term") and "TOTAL" not in result.output:
            problems.append("no coverage table")
    return problems


def run_commands(
    shell: Shell, doc: str, commands: Sequence[str], cwd: Path
) -> tuple[list[str], list[str]]:
    """Run each command in turn; return the failures and the commands left out (with why)."""
    failures: list[str] = []
    left_out: list[str] = []
    for command in commands:
        if not_run_reason(doc, command) is not None:
            continue
        module = missing_plugin(command)
        if module is not None:
            left_out.append(f"{one_line(command)!r} needs {module}, which is not installed")
            continue
        result = shell.run(command, cwd)
        problems = check_result(result, cwd)
        if problems:
            failures.append(f"{'; '.join(problems)}\n{result.describe()}")
    return failures, left_out


# --- artifacts of sharded runs, for the docs' merge commands ---------------------------------


@pytest.fixture(scope="module")
def shard_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two shards' JUnit XML, metrics, durations and coverage data under artifacts/shard-K/,
    made with explicit commands (not from the docs) so that the docs' merge commands can be
    run on their own."""
    base = tmp_path_factory.mktemp("artifacts")
    shell = Shell(base / "shell")
    project = write_project(base / "project")
    for index in (1, 2):
        out = f"artifacts/shard-{index}"
        (project / out).mkdir(parents=True)
        result = shell.run(
            f"pytest --agents 2 --agents-shard {index}/2 --junitxml={out}/junit.xml "
            f"--agents-metrics={out}/metrics.json --agents-store-durations "
            f"--agents-durations={out}/.test_durations --agents-cov mypkg --agents-cov-report=",
            project,
            env={"COVERAGE_FILE": f"{out}/.coverage"},
        )
        assert result.returncode == 0, result.describe()
    return project / "artifacts"


# --- the inventory ------------------------------------------------------------------------------

CONFIG_TESTS = {
    ("README.md", "ini"): "test_readme_ini_configuration",
    ("docs/coverage.md", "toml"): "test_coverage_toml_configuration",
}
CI_HEADINGS = ("GitHub Actions", "GitLab CI", "CircleCI")
CONFTEST_RECIPES = ("def session_data(", "def pytest_sessionstart(")


def _not_a_recipe(block: Block) -> bool:
    return any(
        block.doc == doc and block.lang == lang and block.text.startswith(start)
        for doc, lang, start, _ in NOT_RECIPES
    )


def test_every_block_is_accounted_for() -> None:
    unknown: list[str] = []
    used_rules: set[tuple[str, str]] = set()
    quoted_found: set[str] = set()
    for block in all_blocks():
        if block.lang == "sh":
            for command in shell_commands(block.text):
                for rule_doc, pattern, _ in NOT_RUN:
                    if rule_doc == block.doc and re.match(pattern, one_line(command)):
                        used_rules.add((rule_doc, pattern))
            continue  # run by test_shell_recipes
        if block.lang == "yaml":
            if block.doc != "docs/ci.md" or not block.heading.startswith(CI_HEADINGS):
                unknown.append(f"{block}: a YAML block under {block.heading!r}")
            for command in ci_commands(load_yaml(block.text)):
                for rule_doc, pattern, _ in NOT_RUN:
                    if rule_doc == block.doc and re.match(pattern, one_line(command)):
                        used_rules.add((rule_doc, pattern))
            continue  # run by the CI tests
        if _not_a_recipe(block):
            continue
        if block.lang == "python":
            if sum(name in block.text for name in CONFTEST_RECIPES) != 1:
                unknown.append(f"{block}: a Python block that no test runs")
            continue
        if (block.doc, block.lang) in CONFIG_TESTS:
            continue
        if any(block.doc == doc and block.text.startswith(start) for doc, start, _, _ in QUOTED):
            quoted_found.add(block.text.split("\n")[0][:30])
            continue
        unknown.append(f"{block}: {block.text.splitlines()[0][:60]!r}")
    stale = [f"{doc}: {pattern}" for doc, pattern, _ in NOT_RUN if (doc, pattern) not in used_rules]
    assert not unknown, "code blocks no test runs or lists:\n" + "\n".join(unknown)
    assert not stale, "NOT_RUN entries that match no command any more:\n" + "\n".join(stale)
    assert len(quoted_found) == len(QUOTED), f"quoted outputs not found in the docs: {QUOTED}"
    headings = {b.heading for b in all_blocks() if b.lang == "yaml"}
    for name in CI_HEADINGS:
        assert any(h.startswith(name) for h in headings), f"no {name} recipe in docs/ci.md"


# --- shell blocks ------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_shell_recipes(doc: str, shell: Shell, tmp_path: Path, request: pytest.FixtureRequest):
    """Every command of the doc's shell blocks, in the doc's order, in one project: a
    command may use what an earlier one left (a durations file)."""
    blocks = [b for b in doc_blocks(doc) if b.lang == "sh"]
    commands = [c for b in blocks for c in shell_commands(b.text)]
    runnable = [c for c in commands if not_run_reason(doc, c) is None]
    if not runnable:
        return  # every command of this doc is in NOT_RUN, with its reason
    project = write_project(tmp_path / "project")
    if any(re.search(r"\bmerge artifacts\b", one_line(c)) for c in runnable):
        shutil.copytree(request.getfixturevalue("shard_artifacts"), project / "artifacts")
    failures, left_out = run_commands(shell, doc, runnable, project)
    failures += _claimed_outputs(blocks, project)
    assert not failures, f"{len(failures)} recipes of {doc} failed:\n\n" + "\n\n".join(failures)
    if left_out:
        pytest.skip("all the other recipes passed; not run here: " + "; ".join(left_out))


def _claimed_outputs(blocks: Sequence[Block], cwd: Path) -> list[str]:
    """Comment lines under a `merge ... --out DIR` command that name DIR/FILE: those files
    must exist (docs/ci.md lists what merge writes)."""
    missing: list[str] = []
    for block in blocks:
        out_dirs = [d.rstrip("/") for c in shell_commands(block.text) for d in _option(c, "--out")]
        for line in block.text.splitlines():
            match = re.match(r"#\s+(\S+)", line.strip())
            if match is None:
                continue
            path = match[1]
            if any(path.startswith(f"{d}/") for d in out_dirs) and not (cwd / path).exists():
                missing.append(f"{block}: the comment names {path}, which was not written")
    return missing


@pytest.mark.parametrize(("doc", "start", "command", "status"), QUOTED)
def test_quoted_output(doc: str, start: str, command: str, status: int, shell: Shell, tmp_path):
    (block,) = [b for b in doc_blocks(doc) if b.text.startswith(start)]
    module = missing_plugin(command)
    if module is not None:
        pytest.skip(f"{command!r} needs {module}, which is not installed")
    project = write_project(tmp_path / "project")
    result = shell.run(command, project)
    assert result.returncode == status, result.describe()
    for line in block.text.splitlines():
        assert line in result.output, f"{block} quotes a line not printed:\n{result.describe()}"


# --- configuration blocks ----------------------------------------------------------------------


def _config_block(doc: str, lang: str) -> Block:
    (block,) = [b for b in doc_blocks(doc) if b.lang == lang]
    return block


def test_readme_ini_configuration(shell: Shell, tmp_path: Path) -> None:
    block = _config_block("README.md", "ini")
    project = write_project(tmp_path / "project")
    # The block is the body of pytest.ini's [pytest] section (or of [tool.pytest.ini_options]).
    (project / "pytest.ini").write_text(f"[pytest]\n{block.text}\n", encoding="utf-8")
    result = shell.run("pytest", project)
    assert result.returncode == 0, result.describe()
    plan = [line for line in result.output.splitlines() if line.startswith("parallel agents:")]
    assert plan, f"the configuration did not turn parallel mode on:\n{result.describe()}"
    assert "smoke 3→" in plan[0], f"no smoke suite in the plan:\n{result.describe()}"


def test_coverage_toml_configuration(shell: Shell, tmp_path: Path) -> None:
    block = _config_block("docs/coverage.md", "toml")
    project = write_project(tmp_path / "project")
    (project / "pyproject.toml").write_text(block.text + "\n", encoding="utf-8")
    result = shell.run("pytest", project)
    assert result.returncode == 0, result.describe()
    assert "TOTAL" in result.output, result.describe()
    assert (project / "coverage.xml").is_file(), result.describe()


# --- conftest.py recipes (docs/migrating.md) ----------------------------------------------------

_RECORD = (
    "import json\nimport os\n\n\n"
    "def record(**values):\n"
    '    values["agent"] = os.environ.get("PYTEST_AGENT_ID")\n'
    '    with open(os.environ["RECIPE_LOG"], "a") as log:\n'
    '        log.write(json.dumps(values) + "\\n")\n'
)
# Counts calls of the recipe's produce_expensive_data, in whichever process makes them.
_COUNTER = (
    "import os\n\n\n"
    "def pytest_configure(config):\n"
    "    for plugin in config.pluginmanager.get_plugins():\n"
    '        produce = getattr(plugin, "produce_expensive_data", None)\n'
    '        if produce is None or getattr(produce, "counted", False):\n'
    "            continue\n\n"
    "        def counted(produce=produce):\n"
    '            with open(os.environ["RECIPE_LOG"] + ".produced", "a") as log:\n'
    '                log.write(f"{os.getpid()}\\n")\n'
    "            return produce()\n\n"
    "        counted.counted = True\n"
    "        plugin.produce_expensive_data = counted\n"
)


def _conftest_recipe_block(marker: str) -> str:
    blocks = [b for b in doc_blocks("docs/migrating.md") if b.lang == "python"]
    (text,) = [b.text for b in blocks if marker in b.text]
    return text


def _run_recipe(
    shell: Shell, project: Path, command: str, log: Path
) -> tuple[Result, list[dict[str, Any]]]:
    log.unlink(missing_ok=True)
    result = shell.run(command, project, env={"RECIPE_LOG": str(log)})
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, records


def _recipe_project(where: Path, conftest: str, tests: str) -> Path:
    files = {
        "mypkg/__init__.py": "",
        "conftest.py": conftest,
        "record.py": _RECORD,
        "tests/test_recipe.py": tests,
    }
    return write_project(where, files)


PARALLEL = "pytest --agents 2 --agents-items 4 --agents-min-items 1"


def test_xdist_worker_id_names_each_agent(shell: Shell, tmp_path: Path) -> None:
    """migrating.md: pytest-xdist's worker_id is gwN in agents, one per agent, "master"
    in a plain run."""
    pytest.importorskip("xdist", reason="pytest-xdist provides the worker_id fixture")
    tests = (
        "import pytest\n\nfrom record import record\n\n\n"
        '@pytest.mark.parametrize("i", range(8))\n'
        "def test_ids(i, worker_id, agent_id):\n"
        "    record(worker_id=worker_id, agent_id=agent_id)\n"
    )
    project = _recipe_project(tmp_path / "project", "", tests)
    log = tmp_path / "log"
    result, records = _run_recipe(shell, project, PARALLEL, log)
    assert result.returncode == 0, result.describe()
    by_agent = {r["agent"]: r["worker_id"] for r in records}
    assert by_agent, result.describe()
    assert all(w.startswith("gw") for w in by_agent.values()), records
    # One worker id per agent (timing decides whether both agents ran some of the tests).
    assert len(set(by_agent.values())) == len(by_agent), records
    result, records = _run_recipe(shell, project, "pytest", log)
    assert result.returncode == 0, result.describe()
    assert {(r["worker_id"], r["agent_id"]) for r in records} == {("master", "controller")}


def test_filelock_once_per_run(shell: Shell, tmp_path: Path) -> None:
    conftest = _conftest_recipe_block("def session_data(")
    # Each test lasts a moment: eight instant ones may all be done by the first agent ready
    # before the second is, and the recipe is about two agents sharing one value.
    tests = (
        "import time\n\nimport pytest\n\nfrom record import record\n\n\n"
        '@pytest.mark.parametrize("i", range(8))\n'
        "def test_data(i, session_data):\n"
        "    record(data=session_data)\n"
        "    time.sleep(0.05)\n"
    )
    project = _recipe_project(tmp_path / "project", conftest, tests)
    (project / "counter.py").write_text(_COUNTER, encoding="utf-8")
    log = tmp_path / "log"
    for command in (f"{PARALLEL} -p counter", "pytest -p counter"):
        (tmp_path / "log.produced").unlink(missing_ok=True)
        result, records = _run_recipe(shell, project, command, log)
        assert result.returncode == 0, result.describe()
        assert len(records) == 8, result.describe()
        agents = {r["agent"] for r in records}
        assert len(agents) == (2 if "--agents" in command else 1), result.describe()
        produced = (tmp_path / "log.produced").read_text().splitlines()
        assert len(produced) == 1, f"{command}: produced {len(produced)} times"
        assert len({json.dumps(r["data"]) for r in records}) == 1, records


def test_session_hooks_once_per_run(shell: Shell, tmp_path: Path) -> None:
    conftest = _conftest_recipe_block("def pytest_sessionstart(")
    tests = (
        "import os\n\nimport pytest\n\nfrom record import record\n\n\n"
        '@pytest.mark.parametrize("i", range(8))\n'
        "def test_dir(i):\n"
        '    path = os.environ["MYAPP_DATA_DIR"]\n'
        "    assert os.path.isdir(path)\n"
        "    record(path=path)\n"
    )
    project = _recipe_project(tmp_path / "project", conftest, tests)
    log = tmp_path / "log"
    for command in (PARALLEL, f"{PARALLEL} --agents-start spawn", "pytest"):
        result, records = _run_recipe(shell, project, command, log)
        assert result.returncode == 0, result.describe()
        assert len(records) == 8, result.describe()
        paths = {r["path"] for r in records}
        assert len(paths) == 1, f"{command}: {len(paths)} data directories: {paths}"
        assert not os.path.exists(paths.pop()), f"{command}: the directory was not removed"


# --- CI recipes (docs/ci.md) ---------------------------------------------------------------------


def _ci_block(heading: str) -> Any:
    (block,) = [
        b for b in doc_blocks("docs/ci.md") if b.lang == "yaml" and b.heading.startswith(heading)
    ]
    return load_yaml(block.text)


@dataclass
class Job:
    name: str
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.returncode == 0 for r in self.results)

    def describe(self) -> str:
        failed = [r.describe() for r in self.results if r.returncode != 0]
        return f"job {self.name}:\n" + "\n".join(failed)


class Runner:
    """A CI's jobs in one place: every job in a fresh checkout at the same path, as runners
    check out the repository, artifacts kept between jobs as the CI keeps them."""

    def __init__(self, shell: Shell, base: Path, ci: str) -> None:
        self.shell = shell
        self.ci = ci
        self.work = base / "build"  # the runner's working directory
        self.store = base / "store"  # artifacts and workspaces between jobs
        self.store.mkdir(parents=True)
        self.jobs: list[Job] = []

    def fresh(self, checkout: bool = True) -> Path:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        if checkout:
            write_project(self.work)
        return self.work

    def run(self, job: Job, command: str, env: Mapping[str, str], flags: Sequence[str]) -> None:
        reason = not_run_reason("docs/ci.md", command)
        if reason is not None:
            job.notes.append(f"not run: {command!r}: {reason}")
            return
        job.results.append(self.shell.run(command, self.work, self.work, env, flags))

    def failures(self) -> str:
        return "\n\n".join(job.describe() for job in self.jobs if not job.ok)


def _copy_into(source: Path, target: Path, hidden: bool = True) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if not hidden and any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def _check_merged(merged: Path, runner: Runner) -> None:
    """The merged artifacts hold every test of the project exactly once."""
    assert not runner.failures(), runner.failures()
    cases = ET.parse(merged / "junit.xml").getroot().iter("testcase")
    names = [(case.get("classname"), case.get("name")) for case in cases]
    assert len(names) == len(set(names)) == len(TEST_IDS), f"merged junit.xml: {sorted(names)}"
    durations = json.loads((merged / ".test_durations").read_text())
    assert set(durations) == TEST_IDS, sorted(set(durations) ^ TEST_IDS)
    metrics = json.loads((merged / "metrics.json").read_text())
    assert metrics["totals"]["tests"] == len(TEST_IDS), metrics["totals"]


_EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def _github_substitute(text: str, matrix: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        if not name.startswith("matrix."):
            raise AssertionError(f"the GitHub recipe uses {match[0]}, which this test cannot set")
        return str(matrix[name.removeprefix("matrix.")])

    return _EXPRESSION.sub(value, text)


def _github_matrix(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    names = list(matrix)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*matrix.values())]


def test_github_actions_recipe(shell: Shell, tmp_path: Path) -> None:
    workflow = _ci_block("GitHub Actions")
    runner = Runner(shell, tmp_path / "github", "GitHub")
    artifacts = runner.store / "artifacts"
    done: set[str] = set()
    jobs: dict[str, Any] = workflow["jobs"]
    while len(done) < len(jobs):
        name, spec = next(
            (n, s) for n, s in jobs.items() if n not in done and set(_needs(s.get("needs"))) <= done
        )
        failed_before = any(not j.ok for j in runner.jobs)
        if failed_before and "always()" not in str(spec.get("if", "")):
            runner.jobs.append(Job(name, notes=["skipped: a job it needs failed"]))
        else:
            for matrix in _github_matrix(spec):
                _github_job(runner, f"{name} {matrix}", spec, matrix, artifacts)
        done.add(name)
    _check_merged(artifacts / "merged", runner)
    assert (artifacts / "merged" / "coverage.xml").is_file()
    assert (artifacts / "merged" / ".coverage").is_file()


def _needs(value: Any) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _github_job(
    runner: Runner, name: str, spec: Mapping[str, Any], matrix: Mapping[str, Any], store: Path
) -> None:
    job = Job(name)
    runner.jobs.append(job)
    runner.fresh(checkout=False)
    for step in spec["steps"]:
        if not job.ok and "always()" not in str(step.get("if", "")):
            job.notes.append(f"skipped after a failure: {step}")
            continue
        options = {
            k: _github_substitute(str(v), matrix) for k, v in (step.get("with") or {}).items()
        }
        uses = str(step.get("uses", ""))
        if uses.startswith("actions/checkout@"):
            runner.fresh()
        elif uses.startswith("actions/setup-python@"):
            job.notes.append(f"setup-python {options}: this interpreter instead")
        elif uses.startswith("actions/upload-artifact@"):
            target = store / options["name"]
            assert not target.exists(), f"two artifacts named {options['name']}"
            hidden = options.get("include-hidden-files") == "True"
            _copy_into(runner.work / options["path"], target, hidden=hidden)
        elif uses.startswith("actions/download-artifact@"):
            assert "name" not in options, "the test downloads every artifact, as without name:"
            for artifact in sorted(store.iterdir()):
                _copy_into(artifact, runner.work / options["path"] / artifact.name)
        elif "run" in step:
            env = {
                k: _github_substitute(str(v), matrix) for k, v in (step.get("env") or {}).items()
            }
            command = _github_substitute(step["run"], matrix)
            runner.run(job, command, env, ["-e"])  # GitHub's `bash -e {0}`
        else:
            raise AssertionError(f"a step of the GitHub recipe this test does not know: {step}")


def test_gitlab_recipe(shell: Shell, tmp_path: Path) -> None:
    pipeline = _ci_block("GitLab CI")
    runner = Runner(shell, tmp_path / "gitlab", "GitLab")
    stages = [".pre", "build", "test", "deploy", ".post"]
    jobs = {n: s for n, s in pipeline.items() if isinstance(s, dict) and "script" in s}
    assert set(pipeline) == set(jobs), f"top-level keys this test does not know: {pipeline}"
    extracted: list[Path] = []  # artifacts of the finished jobs, in the order they ran
    for stage in stages:
        finished = list(extracted)
        for name, spec in jobs.items():
            if spec.get("stage", "test") != stage:
                continue
            total = spec.get("parallel")
            for index in range(1, int(total) + 1) if total else [None]:
                env = {"CI": "true", "GITLAB_CI": "true"}
                if index is not None:
                    env.update(CI_NODE_INDEX=str(index), CI_NODE_TOTAL=str(total))
                job = Job(f"{name} {index}/{total}" if index else name)
                runner.jobs.append(job)
                work = runner.fresh()
                for artifact in finished:  # same paths overwrite one another, as in GitLab
                    _copy_into(artifact, work)
                for line in spec["script"]:
                    if job.ok:
                        runner.run(job, line, env, ["-e"])
                artifacts = spec.get("artifacts") or {}
                if job.ok or artifacts.get("when") == "always":
                    kept = runner.store / f"{len(extracted)}"
                    for pattern in artifacts.get("paths") or []:
                        for path in sorted(work.glob(pattern.rstrip("/"))):
                            _copy_into(path, kept / path.relative_to(work))
                    extracted.append(kept)
                for pattern in (artifacts.get("reports") or {}).values():
                    if job.ok:
                        assert list(work.glob(pattern)), f"{job.name}: no report {pattern}"
    merged = runner.store / "merged"
    _copy_into(extracted[-1] / "merged", merged)
    _check_merged(merged, runner)


def test_circleci_recipe(shell: Shell, tmp_path: Path) -> None:
    config = _ci_block("CircleCI")
    runner = Runner(shell, tmp_path / "circleci", "CircleCI")
    workspace = runner.store / "workspace"
    workspace.mkdir()
    kept: dict[str, Path] = {}
    (workflow,) = config["workflows"].values()
    done: set[str] = set()
    entries = [e if isinstance(e, str) else next(iter(e.items())) for e in workflow["jobs"]]
    for entry in entries:
        name, options = (entry, {}) if isinstance(entry, str) else entry
        assert set(_needs((options or {}).get("requires"))) <= done, f"{name} runs too early"
        spec = config["jobs"][name]
        total = int(spec.get("parallelism", 1))
        for index in range(total):
            env = {
                "CIRCLECI": "true",
                "CIRCLE_NODE_INDEX": str(index),
                "CIRCLE_NODE_TOTAL": str(total),
            }
            job = Job(f"{name} {index}/{total}")
            runner.jobs.append(job)
            work = runner.fresh(checkout=False)  # an empty working directory until checkout
            for step in spec["steps"]:
                kind, args = (step, None) if isinstance(step, str) else next(iter(step.items()))
                if not job.ok:
                    continue
                if kind == "checkout":
                    runner.fresh()
                elif kind == "run":
                    command = args["command"] if isinstance(args, dict) else args
                    runner.run(job, command, env, ["-eo", "pipefail"])  # CircleCI's shell
                elif kind == "persist_to_workspace":
                    for path in args["paths"]:
                        _copy_into(work / args["root"] / path, workspace / path)
                elif kind == "attach_workspace":
                    _copy_into(workspace, work / args["at"])
                elif kind == "store_test_results":
                    assert list((work / args["path"]).rglob("*.xml")), f"{job.name}: no results"
                elif kind == "store_artifacts":
                    kept[args["path"]] = runner.store / args["path"]
                    _copy_into(work / args["path"], kept[args["path"]])
                else:
                    raise AssertionError(f"a CircleCI step this test does not know: {step}")
        done.add(name)
    _check_merged(kept["merged"], runner)
