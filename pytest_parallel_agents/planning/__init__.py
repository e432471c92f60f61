"""Planning: pure decisions from data (suites, sizing, scheduling, shards, specs), no I/O."""
