"""`make demo`: the plan, a plain run and a parallel run of this suite, side by side.

Run from this directory with the interpreter that has pytest-parallel-agents installed:
``python show.py``. It writes report.html, trace.json and metrics.json here.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]


def heading(text: str) -> None:
    line = f"== {text}"
    print(f"\n\033[1m{line}\033[0m" if sys.stdout.isatty() else f"\n{line}", flush=True)


def timed(args: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    code = subprocess.call([*PYTEST, *args], cwd=HERE)
    return time.monotonic() - started, code


def main() -> int:
    heading("the plan: suites, tests, agents, waves (nothing runs)")
    subprocess.call([*PYTEST, "-q", "--agents", "auto", "--agents-plan"], cwd=HERE)
    heading("a plain run: pytest -q")
    plain, plain_code = timed(["-q"])
    heading("the same suite on agents: pytest -q --agents auto")
    parallel, parallel_code = timed(
        [
            "-q",
            "--agents",
            "auto",
            "--agents-report=report.html",
            "--agents-trace=trace.json",
            "--agents-metrics=metrics.json",
        ]
    )
    heading("side by side")
    print(f"  plain     {plain:6.2f} s  (exit {plain_code})")
    print(f"  agents    {parallel:6.2f} s  (exit {parallel_code})")
    if parallel > 0:
        print(f"  ratio     {plain / parallel:6.2f}x  (plain / agents, whole processes)")
    print(f"  report    {HERE / 'report.html'}  (open it in a browser: a lane per agent)")
    print(f"  trace     {HERE / 'trace.json'}  (https://ui.perfetto.dev or chrome://tracing)")
    print(f"  metrics   {HERE / 'metrics.json'}")
    return plain_code or parallel_code


if __name__ == "__main__":
    sys.exit(main())
