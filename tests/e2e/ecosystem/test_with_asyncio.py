"""pytest-asyncio: async tests and fixtures of every loop scope, strict and auto mode."""

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
    "pytest.ini": """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        asyncio_default_test_loop_scope = function
    """,
    "test_strict.py": """
        import asyncio

        import pytest
        import pytest_asyncio


        @pytest_asyncio.fixture
        async def value():
            await asyncio.sleep(0)
            yield 42
            await asyncio.sleep(0)


        @pytest_asyncio.fixture(scope="module", loop_scope="module")
        async def shared_loop():
            return asyncio.get_running_loop()


        @pytest.mark.asyncio
        async def test_fixture(value):
            assert value == 42


        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop_first(shared_loop):
            assert asyncio.get_running_loop() is shared_loop


        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop_second(shared_loop):
            assert asyncio.get_running_loop() is shared_loop


        @pytest.mark.asyncio
        async def test_gather():
            results = await asyncio.gather(*(asyncio.sleep(0.01, result=i) for i in range(5)))
            assert results == [0, 1, 2, 3, 4]


        @pytest.mark.asyncio
        async def test_timeout_fails():
            await asyncio.wait_for(asyncio.sleep(5), timeout=0.05)


        async def test_unmarked_is_not_run_in_strict_mode():
            raise AssertionError("never awaited")
    """,
    "auto/pytest.ini": """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
    """,
    "auto/test_auto.py": """
        import asyncio


        async def test_auto_one():
            await asyncio.sleep(0)


        async def test_auto_two():
            assert asyncio.get_running_loop().is_running()


        async def test_auto_fails():
            assert await asyncio.sleep(0, result=1) == 2
    """,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("asyncio"), PROJECT)


@pytest.fixture(scope="module")
def plain(project: Path) -> Run:
    run = run_pytest(project, "plain", "test_strict.py")
    # strict mode: pytest itself fails the unmarked coroutine ("not natively supported").
    assert run.summary == "2 failed, 4 passed", run.describe()
    return run


@pytest.fixture(scope="module")
def plain_auto(project: Path) -> Run:
    run = run_pytest(project / "auto", "plain")
    assert run.summary == "1 failed, 2 passed", run.describe()
    return run


@pytest.mark.parametrize("mode", AGENT_MODES)
def test_asyncio_strict_same_as_plain(project: Path, plain: Run, mode: str) -> None:
    run = run_pytest(project, mode, "test_strict.py")
    assert_same_outcomes(plain, run)
    # The failure messages (their first line: the traceback names asyncio's numbered tasks).
    heads = {name: text.splitlines()[0] for name, text in junit_messages(run.junit_path).items()}
    plain_messages = junit_messages(plain.junit_path).items()
    assert heads == {name: text.splitlines()[0] for name, text in plain_messages}


@pytest.mark.parametrize("mode", ["fork2"])
def test_asyncio_auto_same_as_plain(project: Path, plain_auto: Run, mode: str) -> None:
    run = run_pytest(project / "auto", mode)
    assert_same_outcomes(plain_auto, run)
