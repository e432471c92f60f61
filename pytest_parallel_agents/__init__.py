"""pytest-parallel-agents: run a pytest suite on pools of parallel agents."""

__version__ = "0.1.0"
