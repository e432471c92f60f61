"""Crash recovery time: from an agent's death to its pending tests running elsewhere.

A suite of 30 short tests runs on 3 agents (contiguous chunks, no durations). The test in the
middle of the first agent's chunk records the wall time and kills its agent with SIGKILL;
every test records when it started. Recovery time = first start, after the death, of a test
that the dead agent still had to run, minus the time of death. Medians of repeated runs.

    python benchmarks/recovery.py [--reps 10] [--start fork|spawn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PROJECT = textwrap.dedent(
    """
    import json, os, signal, time
    from pathlib import Path
    import pytest

    LOG = Path(os.environ["RECOVERY_LOG"])

    @pytest.mark.parametrize("i", range(30))
    def test_work(i):
        started = time.time()
        with open(LOG / f"start-{i}", "w") as out:
            out.write(json.dumps([started, os.environ.get("PYTEST_AGENT_ID")]))
        if i == 4:
            (LOG / "death").write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
    """
)


def one_run(start: str) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "test_recovery.py").write_text(PROJECT)
        log = root / "log"
        log.mkdir()
        env = {**__import__("os").environ, "RECOVERY_LOG": str(log)}
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-p", "no:hypothesispytest", "--agents=3", "--agents-items=1",
             f"--agents-start={start}", "--agents-retries=0"],
            cwd=root, env=env, capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        death_file = log / "death"
        if not death_file.exists():
            return None
        death = float(death_file.read_text())
        # The first agent's chunk is tests 0..9; those after the victim were pending on it.
        starts = []
        for i in range(5, 10):
            path = log / f"start-{i}"
            if path.exists():
                started, _agent = json.loads(path.read_text())
                if started > death:
                    starts.append(started)
        return min(starts) - death if starts else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--start", choices=["fork", "spawn"], default="fork")
    args = parser.parse_args()
    times = [t for t in (one_run(args.start) for _ in range(args.reps)) if t is not None]
    if not times:
        print("no measurement: the crash or the requeued tests were not observed")
        return 1
    ms = sorted(round(t * 1000, 1) for t in times)
    print(
        f"recovery ({args.start}, {len(ms)} runs): median {statistics.median(ms):.1f} ms, "
        f"min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms"
    )
    print("all:", ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
