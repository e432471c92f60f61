"""pytest-parallel-agents: run a pytest suite on pools of parallel agents.

PYTEST_DONT_REWRITE: a spawned agent imports this package before its pytest session starts
(the bootstrap that serves the gateway lives here), so pytest's assertion rewriting, which
marks every module of an installed pytest11 plugin, would warn that it came too late; with
``filterwarnings = error`` that warning ended the agent. The plugin's own asserts need no
rewriting.
"""

__version__ = "0.1.0"
