"""The controller's CPU time per passing test, with the terminal, JUnit and the cache active.

    python benchmarks/controller_cost.py [--tests 3000] [--agents 2] [--reps 5]
                                         [--out benchmarks/out/controller] [--observed]

Generates ``--tests`` trivial tests in 30 files under OUT/suite, then runs, interleaved for
``--reps`` repetitions: plain pytest and ``--agents N`` (fork), each with ``--junitxml`` and
the cache plugin on (its own cache directory per run); with ``--observed`` also ``--agents N``
writing the events, the trace and the HTML report. The ``controllerprobe`` plugin takes
``time.process_time()`` between ``pytest_collection_finish`` and ``pytest_sessionfinish`` in
the controller (the plain run's only process): that is the CPU the controller spends in the
test phase, replaying every report through pytest's hooks. Prints the medians in µs per
passing test and writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def generate(root: Path, tests: int, files: int = 30) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    per_file = -(-tests // files)
    made = 0
    for number in range(files):
        count = min(per_file, tests - made)
        if count <= 0:
            break
        body = "".join(f"def test_{t}():\n    pass\n\n\n" for t in range(count))
        (root / f"test_c_{number:02d}.py").write_text(body.rstrip("\n") + "\n")
        made += count


def once(root: Path, variant: str, agents: int) -> float:
    """µs of controller CPU per passing test in one run."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "probe.json"
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "controllerprobe",
            f"--junitxml={scratch}/junit.xml",
            "-o",
            f"cache_dir={scratch}/cache",
        ]
        if variant in ("agents", "observed"):
            args += ["--agents", str(agents)]
        if variant == "observed":
            args += [
                f"--agents-events={scratch}/events.jsonl",
                f"--agents-trace={scratch}/trace.json",
                f"--agents-report={scratch}/report.html",
            ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "BENCH_CONTROLLER_OUT": str(out),
        }
        env.pop("PYTEST_ADDOPTS", None)
        done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{variant} run failed ({done.returncode}):\n{done.stdout[-2000:]}")
        probe = json.loads(out.read_text())
        return 1e6 * probe["cpu_seconds"] / probe["passed"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "controller")
    parser.add_argument(
        "--observed",
        action="store_true",
        help="also --agents N with --agents-events, --agents-trace and --agents-report",
    )
    args = parser.parse_args(argv)
    suite = args.out / "suite"
    generate(suite, args.tests)
    variants = ("plain", "agents", "observed") if args.observed else ("plain", "agents")
    samples: dict[str, list[float]] = {variant: [] for variant in variants}
    for rep in range(args.reps):
        for variant in variants if rep % 2 == 0 else tuple(reversed(variants)):
            samples[variant].append(once(suite, variant, args.agents))
    medians = {variant: statistics.median(values) for variant, values in samples.items()}
    result = {
        "tests": args.tests,
        "agents": args.agents,
        "samples_us": samples,
        "median_us": medians,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.tests} trivial tests, --junitxml and the cache plugin on, {args.reps} reps:")
    print("| run | controller CPU per passing test (median, µs) | samples |")
    print("|---|---|---|")
    labels = {
        "plain": "plain pytest (its one process)",
        "agents": f"--agents {args.agents} (the controller)",
        "observed": f"--agents {args.agents} with events, trace and report (the controller)",
    }
    for variant in variants:
        label = labels[variant]
        shown = ", ".join(f"{v:.0f}" for v in samples[variant])
        print(f"| {label} | {medians[variant]:.0f} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
