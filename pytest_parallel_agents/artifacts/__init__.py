"""Artifacts: files the run writes (durations, metrics) and the merge command for CI shards."""
