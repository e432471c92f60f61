"""What an ssh agent costs next to a local one, on the same suite and the same machine.

    python benchmarks/remote.py [--reps 3] [--suite cpu] [--agents 2]

Starts a private sshd on 127.0.0.1 (tests/sshd.py; needs openssh-server, which `make test`
installs), generates the suite if needed (benchmarks/generate.py), then runs, interleaved per
repetition: forked agents (`--agents N`), spawned agents (`--agents N --agents-start spawn`),
local gateways (`--agents-tx N*popen`), ssh agents on a shared checkout
(`--agents-tx N*ssh=...//chdir=SUITE`) and ssh agents with `--agents-rsync .`. Prints medians
of the wall time and of the agents' start-up (metrics `spawn_seconds`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import generate  # noqa: E402
from sshd import SshServer  # noqa: E402


def run(cwd: Path, args: list[str], metrics: Path) -> tuple[float, float | None]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    command.append(f"--agents-metrics={metrics}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr}")
    spawns = [a["spawn_seconds"] for a in json.loads(metrics.read_text())["agents"]]
    present = [s for s in spawns if s is not None]
    return wall, statistics.median(present) if present else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--suite", default="cpu", choices=generate.SUITES)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "suites")
    options = parser.parse_args(argv)
    root = options.out / options.suite
    if not generate.is_current(root, 1.0):
        generate.generate(options.out, [options.suite], 1.0)
    n = options.agents
    with tempfile.TemporaryDirectory(prefix="bench-sshd-") as scratch:
        server = SshServer(Path(scratch)).start()
        try:
            ssh = server.spec(sys.executable)
            variants = {
                f"local fork, --agents {n}": ["--agents", str(n)],
                f"local spawn, --agents {n}": ["--agents", str(n), "--agents-start", "spawn"],
                f"--agents-tx {n}*popen": ["--agents-tx", f"{n}*popen"],
                f"--agents-tx {n}*ssh (shared checkout)": [
                    "--agents-tx",
                    f"{n}*{ssh}//chdir={root}",
                ],
                f"--agents-tx {n}*ssh --agents-rsync .": [
                    "--agents-tx",
                    f"{n}*{ssh}",
                    "--agents-rsync",
                    ".",
                ],
            }
            common = ["--agents-items", "1", "--agents-min-items", "1"]
            walls: dict[str, list[float]] = {name: [] for name in variants}
            spawns: dict[str, list[float]] = {name: [] for name in variants}
            metrics = Path(scratch) / "metrics.json"
            for rep in range(options.reps):
                for name, args in variants.items():
                    wall, spawn = run(root, [*args, *common], metrics)
                    walls[name].append(wall)
                    if spawn is not None:
                        spawns[name].append(spawn)
                    print(f"[rep {rep + 1}] {name}: {wall:.2f} s", file=sys.stderr)
        finally:
            server.stop()
    base = statistics.median(walls[f"--agents-tx {n}*popen"])
    print(f"\n{options.suite} suite, {n} agents, medians of {options.reps}\n")
    print("| variant | wall s | x local gateways | agent start-up s |")
    print("|---|---|---|---|")
    for name in variants:
        wall = statistics.median(walls[name])
        spawn = statistics.median(spawns[name]) if spawns[name] else float("nan")
        print(f"| {name} | {wall:.2f} | {wall / base:.2f}x | {spawn:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
