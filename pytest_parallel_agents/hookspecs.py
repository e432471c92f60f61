"""Hooks other plugins may implement; every name starts with ``pytest_agents_``.

Arguments are plain pytest and plugin objects, never execnet ones, so implementations
keep working whatever transport carries the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_parallel_agents.controller.runstate import AgentRecord, RunState
    from pytest_parallel_agents.planning.sizing import Plan


@pytest.hookspec(firstresult=True)
def pytest_agents_classify(item: pytest.Item, suites: tuple[str, ...]) -> str | None:
    """Return the suite ``item`` belongs to, or None to let the built-in rules decide.

    ``suites`` are the names known from the built-ins and the ``agents_suites`` ini rules;
    returning another name creates a suite of that name with default settings.
    Called once per collected test in the controller, before ``--agents-suite`` filtering.
    """


def pytest_agents_plan_ready(config: pytest.Config, plan: Plan) -> None:
    """Called in the controller once the suites are sized, before any agent starts.

    Also called under ``--agents-plan``. ``plan.in_process`` tells whether the run
    will stay in this process.
    """


def pytest_agents_agent_started(config: pytest.Config, agent: AgentRecord) -> None:
    """Called in the controller when an agent has collected and is ready for tests."""


def pytest_agents_agent_finished(config: pytest.Config, agent: AgentRecord) -> None:
    """Called in the controller when an agent ended, normally or not (``agent.crashed``)."""


def pytest_agents_run_finished(config: pytest.Config, run: RunState) -> None:
    """Called in the controller after the last test, before the metrics file is written."""
