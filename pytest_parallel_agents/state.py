"""Keys for the plugin's state on ``config.stash`` and ``item.stash``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    # Types only: a plain run, which never makes these objects, does not import their modules.
    from pytest_parallel_agents.controller.events import RunEvents
    from pytest_parallel_agents.controller.runstate import RunState
    from pytest_parallel_agents.coverage.plugin import CoverageRun
    from pytest_parallel_agents.options import Settings

# Set in an agent's config: the agent's id ("unit-0"); absent in the controller.
AGENT_ID_KEY = pytest.StashKey[str]()
# The validated options, on the controller's config.
SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
# Everything the controller learns during one run (plan, timings, agents, durations).
RUN_KEY: pytest.StashKey[RunState] = pytest.StashKey()
# The suite a collected test belongs to.
SUITE_KEY = pytest.StashKey[str]()
# The run's coverage measurement, when one was asked for (--agents-cov, or --cov with agents).
COVERAGE_KEY: pytest.StashKey[CoverageRun] = pytest.StashKey()
# The run's events, when a file is built from them (--agents-events, -trace, -report).
EVENTS_KEY: pytest.StashKey[RunEvents] = pytest.StashKey()

# What a forked agent must drop from the controller's stash, so it never acts as one.
CONTROLLER_KEYS = (SETTINGS_KEY, RUN_KEY, EVENTS_KEY)
