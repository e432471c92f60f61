"""The plugin's artifacts go where they are asked, into directories created as needed."""

from __future__ import annotations

import json
import os
import stat

import pytest
from helpers import run, summary_counts

from pytest_parallel_agents.files import write_atomically

PROJECT = "def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n"


def test_artifacts_go_into_new_directories(pytester: pytest.Pytester) -> None:
    """Issue 15 §1.10: --agents-metrics out/1/m.json failed (exit 4) while --junitxml
    created its directory; a CI job writes into fresh directories."""
    pytester.makepyfile(test_a=PROJECT)
    result = run(
        pytester,
        "--agents",
        "2",
        "--agents-items",
        "1",
        "--agents-metrics",
        "out/1/m.json",
        "--agents-store-durations",
        "--agents-durations",
        "out/durations/.test_durations",
        "--junitxml",
        "out/1/junit.xml",
    )
    assert summary_counts(result) == {"passed": 3}
    metrics = json.loads((pytester.path / "out/1/m.json").read_text())
    assert metrics["totals"]["passed"] == 3
    durations = json.loads((pytester.path / "out/durations/.test_durations").read_text())
    assert len(durations) == 3


def test_every_artifact_gets_the_mode_of_the_umask(pytester: pytest.Pytester) -> None:
    """Issue 16 §7: ``.test_durations`` was written 0600 where the other artifacts were 0644."""
    pytester.makepyfile(test_a=PROJECT)
    previous = os.umask(0o022)
    try:
        result = run(
            pytester,
            "--agents",
            "2",
            "--agents-store-durations",
            "--agents-metrics",
            "m.json",
            subprocess=True,
        )
    finally:
        os.umask(previous)
    assert summary_counts(result) == {"passed": 3}
    modes = {
        name: stat.S_IMODE((pytester.path / name).stat().st_mode)
        for name in (".test_durations", "m.json")
    }
    assert modes == {".test_durations": 0o644, "m.json": 0o644}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root.joinpath("blocked").write_text(""), "blocked is not a directory"),
        (lambda root: root.joinpath("m.json").mkdir(), "is a directory, expected a file path"),
    ],
    ids=["file-in-the-way", "directory"],
)
def test_an_artifact_path_that_cannot_be_made_is_a_usage_error(
    pytester: pytest.Pytester, make: object, message: str
) -> None:
    pytester.makepyfile(test_a=PROJECT)
    make(pytester.path)  # type: ignore[operator]
    target = "blocked/sub/m.json" if "blocked" in message else "m.json"
    result = run(pytester, "--agents", "2", "--agents-metrics", target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_files_are_written_with_the_users_umask(tmp_path: os.PathLike[str]) -> None:
    previous = os.umask(0o027)
    try:
        target = tmp_path / "a" / "b" / "f.json"  # type: ignore[operator]
        write_atomically(target, "{}\n")
    finally:
        os.umask(previous)
    assert target.read_text() == "{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]  # no temporary left
