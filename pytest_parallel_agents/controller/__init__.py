"""The controller: runs the plan on agents, recovers from crashes, replays reports."""
