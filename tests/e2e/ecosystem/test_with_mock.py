"""pytest-mock: the ``mocker`` fixture, spies and stubs, and its assertion messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from ecosystem_helpers import (
    AGENT_MODES,
    Run,
    assert_same_outcomes,
    junit_messages,
    run_pytest,
    write_files,
)

PROJECT = {
    "calc.py": """
        import os


        def home():
            return os.environ.get("HOME", "")


        def double(x):
            return 2 * x


        def quadruple(x):
            return double(double(x))
    """,
    "test_mocking.py": """
        import os

        import calc


        def test_patch(mocker):
            mocker.patch("calc.home", return_value="/nowhere")
            assert calc.home() == "/nowhere"


        def test_patch_undone():
            assert calc.home() == os.environ.get("HOME", "")


        def test_spy(mocker):
            spy = mocker.spy(calc, "double")
            assert calc.quadruple(3) == 12
            assert spy.call_count == 2
            assert spy.spy_return == 12


        def test_stub(mocker):
            stub = mocker.stub(name="callback")
            stub(1, key="v")
            stub.assert_called_once_with(1, key="v")


        def test_patch_dict(mocker):
            mocker.patch.dict(os.environ, {"ECOSYSTEM_MOCK": "1"})
            assert os.environ["ECOSYSTEM_MOCK"] == "1"


        def test_wrong_call(mocker):
            stub = mocker.stub(name="callback")
            stub(1)
            stub.assert_called_once_with(2)
    """,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("mock"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> Run:
    run = run_pytest(project, "plain")
    assert run.summary == "1 failed, 5 passed", run.describe()
    return run


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_mock_same_as_plain(project: Path, plain: Run, mode: str) -> None:
    run = run_pytest(project, mode)
    assert_same_outcomes(plain, run)
    # pytest-mock's introspected assertion message comes through whole.
    failure = junit_messages(run.junit_path)["test_mocking.test_wrong_call"]
    assert "Expected: callback(2)" in failure and "Actual: callback(1)" in failure, failure
    assert junit_messages(plain.junit_path) == junit_messages(run.junit_path)
