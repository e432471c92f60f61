"""Keys for the plugin's state on ``config.stash`` and ``item.stash``."""

from __future__ import annotations

import pytest

from pytest_parallel_agents.controller.runstate import RunState
from pytest_parallel_agents.options import Settings

# Set in an agent's config: the agent's id ("unit-0"); absent in the controller.
AGENT_ID_KEY = pytest.StashKey[str]()
# The validated options, on the controller's config.
SETTINGS_KEY = pytest.StashKey[Settings]()
# Everything the controller learns during one run (plan, timings, agents, durations).
RUN_KEY = pytest.StashKey[RunState]()
# The suite a collected test belongs to.
SUITE_KEY = pytest.StashKey[str]()

# What a forked agent must drop from the controller's stash, so it never acts as one.
CONTROLLER_KEYS = (SETTINGS_KEY, RUN_KEY)
