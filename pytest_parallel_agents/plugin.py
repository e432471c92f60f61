"""pytest entry point of pytest-parallel-agents (being written)."""
