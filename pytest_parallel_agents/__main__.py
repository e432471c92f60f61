"""``python -m pytest_parallel_agents``: the same console script as ``pytest-parallel-agents``."""

from __future__ import annotations

import sys

from pytest_parallel_agents.artifacts.cli import main

if __name__ == "__main__":
    sys.exit(main())
