"""Generate the synthetic benchmark suites.

    python benchmarks/generate.py OUTDIR [--scale 1.0] [--suites tiny,sleep,...]

Each suite is a directory of OUTDIR with its own (empty) ``pytest.ini``, so pytest run from it
uses it as the rootdir. ``--scale`` shrinks test counts and durations for smoke runs. Every
suite directory also holds ``.bench_meta.json`` (scale, parameters, calibration), which
``run.py`` reads to decide whether the suite must be regenerated.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

SUITES = ("tiny", "sleep", "cpu", "imports", "param", "covered", "slowmod")
META = ".bench_meta.json"
GENERATOR_VERSION = 1

SLEEP_SEED = 20240531
SLEEP_TESTS = 240
SLEEP_TOTAL = 60.0
SLEEP_FILES = 12

# A first run (no durations) of a suite with one slow module: quick tests, then the module.
SLOWMOD_QUICK_FILES = 20
SLOWMOD_QUICK_PER_FILE = 100
SLOWMOD_SLOW = 40
SLOWMOD_SECONDS = 0.1

# The busy loops of the cpu suite (in a test function: local variables) and of the imports
# suite (at module level: global variables), each calibrated once at generation time.
FUNC_LOOP = (
    "def test_{t}():\n"
    "    x = 0\n"
    "    for i in range(N):\n"
    "        x += i * i % 7\n"
    "    assert x >= 0\n"
)
MODULE_LOOP = "_x = 0\nfor _i in range(N):\n    _x += _i * _i % 7\n"


def _scaled(count: int, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(count * scale))


def _loop_seconds(in_function: bool, n: int) -> float:
    if in_function:
        namespace: dict[str, object] = {"N": n}
        exec(compile(FUNC_LOOP.format(t=0), "<calibrate>", "exec"), namespace)
        func = namespace["test_0"]
        assert callable(func)
    else:
        code = compile(MODULE_LOOP, "<calibrate>", "exec")

        def func() -> None:
            exec(code, {"N": n})

    times = []
    for _ in range(7):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def calibrate(target_s: float, in_function: bool) -> int:
    """Iterations of a busy loop that take about ``target_s`` seconds on this machine."""
    n = 10_000
    while _loop_seconds(in_function, n) < 0.01:
        n *= 2
    n = max(1, round(n * target_s / _loop_seconds(in_function, n)))
    # Two refinement passes at the target size.
    for _ in range(2):
        n = max(1, round(n * target_s / _loop_seconds(in_function, n)))
    return n


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _start_suite(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    _write(root / "pytest.ini", "[pytest]\n")


def _finish_suite(root: Path, meta: dict[str, object]) -> None:
    _write(root / META, json.dumps(meta, indent=2) + "\n")


def gen_tiny(root: Path, scale: float) -> dict[str, object]:
    files = _scaled(60, scale)
    per_file = 50
    for f in range(files):
        body = "".join(f"\n\ndef test_{t}():\n    pass\n" for t in range(per_file))
        _write(root / f"test_tiny_{f:02d}.py", body.lstrip("\n"))
    return {"tests": files * per_file, "files": files}


def gen_slowmod(root: Path, scale: float) -> dict[str, object]:
    """2,000 trivial tests in 20 files, then a module of 40 tests sleeping 0.1 s each.

    Nothing tells a first run that the last module is slow: the agent whose share reaches
    it takes a window of its tests before any has run (what ``ReturnTests`` is for).
    """
    files = _scaled(SLOWMOD_QUICK_FILES, scale)
    for f in range(files):
        body = "".join(f"\n\ndef test_{t}():\n    pass\n" for t in range(SLOWMOD_QUICK_PER_FILE))
        _write(root / f"test_quick_{f:02d}.py", body.lstrip("\n"))
    slow = _scaled(SLOWMOD_SLOW, scale, minimum=2)
    lines = ["import time\n"]
    recorded: dict[str, float] = {}
    for t in range(slow):
        lines.append(f"\n\ndef test_{t}():\n    time.sleep({SLOWMOD_SECONDS!r})\n")
        recorded[f"test_zz_slow.py::test_{t}"] = SLOWMOD_SECONDS
    _write(root / "test_zz_slow.py", "".join(lines))
    # The sleeps alone (the trivial tests add ~0.3 ms each).
    total = round(slow * SLOWMOD_SECONDS, 6)
    info = {"total": total, "longest": SLOWMOD_SECONDS, "tests": slow, "durations": recorded}
    _write(root / "durations.json", json.dumps(info, indent=2) + "\n")
    tests = files * SLOWMOD_QUICK_PER_FILE + slow
    return {"tests": tests, "files": files + 1, "slow_tests": slow, "slow_total_s": total}


def _fit_total(values_ms: list[int], total_ms: int, cap_ms: int) -> list[int]:
    """Scale ``values_ms`` to sum to exactly ``total_ms``, each in 1..``cap_ms``."""
    raw = [float(v) for v in values_ms]
    for _ in range(50):
        factor = total_ms / sum(raw)
        raw = [min(r * factor, cap_ms) for r in raw]
        if abs(sum(raw) - total_ms) < 1:
            break
    out = [max(1, round(r)) for r in raw]
    # Put the rounding residue on the largest value that stays in range.
    residue = total_ms - sum(out)
    for i in sorted(range(len(out)), key=lambda i: out[i], reverse=True):
        if 1 <= out[i] + residue <= cap_ms:
            out[i] += residue
            return out
    raise RuntimeError("cannot distribute the sleep suite's rounding residue")


def sleep_durations(scale: float) -> list[float]:
    """Heavy-tailed, deterministic sleep durations summing to exactly ``SLEEP_TOTAL * scale``.

    At scale 1: 240 tests, total 60.0 s, the longest 4.5-5 s, three more of 3-4.5 s, the rest a
    Pareto tail under 3 s. Durations are whole milliseconds, in a seeded shuffled order. A
    smaller scale keeps a stratified subset of ``240 * scale`` tests (the longest among them)
    rescaled to the smaller total.
    """
    rng = random.Random(SLEEP_SEED)
    total_ms = round(SLEEP_TOTAL * 1000)
    heavy_ms = [round(rng.uniform(4.5, 5.0) * 1000)]
    heavy_ms += [round(rng.uniform(3.0, 4.5) * 1000) for _ in range(3)]
    tail = [rng.paretovariate(1.6) for _ in range(SLEEP_TESTS - len(heavy_ms))]
    tail_ms = _fit_total([round(t * 1000) for t in tail], total_ms - sum(heavy_ms), 2900)
    full = sorted(heavy_ms + tail_ms, reverse=True)
    n = _scaled(SLEEP_TESTS, scale, minimum=8)
    if n >= len(full):
        chosen = full
    else:
        chosen = [full[round(i * len(full) / n)] for i in range(n)]
        chosen = _fit_total(chosen, round(SLEEP_TOTAL * scale * 1000), max(chosen))
    rng.shuffle(chosen)
    assert sum(chosen) == round(SLEEP_TOTAL * min(scale, 1.0) * 1000) or scale > 1
    return [d / 1000 for d in chosen]


def gen_sleep(root: Path, scale: float) -> dict[str, object]:
    durations = sleep_durations(scale)
    files = min(SLEEP_FILES, len(durations))
    per_file: list[list[float]] = [[] for _ in range(files)]
    for i, d in enumerate(durations):
        per_file[i % files].append(d)
    recorded: dict[str, float] = {}
    for f, ds in enumerate(per_file):
        name = f"test_sleep_{f:02d}.py"
        lines = ["import time\n"]
        for t, d in enumerate(ds):
            lines.append(f"\n\ndef test_{t}():\n    time.sleep({d!r})\n")
            recorded[f"{name}::test_{t}"] = d
        _write(root / name, "".join(lines))
    ordered = dict(sorted(recorded.items()))
    _write(root / ".test_durations", json.dumps(ordered, indent=2) + "\n")
    total = round(sum(durations), 6)
    longest = max(durations)
    info = {"total": total, "longest": longest, "tests": len(durations), "durations": ordered}
    _write(root / "durations.json", json.dumps(info, indent=2) + "\n")
    return {"tests": len(durations), "files": files, "total_s": total, "longest_s": longest}


def gen_cpu(root: Path, scale: float, loop_n: int) -> dict[str, object]:
    files = 10
    tests = _scaled(200, scale, minimum=files)
    per_file = [tests // files + (1 if f < tests % files else 0) for f in range(files)]
    for f, count in enumerate(per_file):
        body = [f"N = {loop_n}\n"]
        for t in range(count):
            body.append("\n\n" + FUNC_LOOP.format(t=t))
        _write(root / f"test_cpu_{f:02d}.py", "".join(body))
    return {"tests": tests, "files": files, "loop_iterations": loop_n, "target_ms": 20}


def gen_imports(root: Path, scale: float, loop_n: int) -> dict[str, object]:
    modules = _scaled(40, scale, minimum=2)
    per_module = 5
    for m in range(modules):
        helper = f"imphelper_{m:02d}"
        _write(
            root / f"{helper}.py",
            f'"""Costs about 50 ms to import (a calibrated busy loop)."""\n\n'
            f"N = {loop_n}\n{MODULE_LOOP}VALUE = {m}\n",
        )
        body = [f"import {helper}\n"]
        for t in range(per_module):
            body.append(f"\n\ndef test_{t}():\n    assert {helper}.VALUE == {m}\n")
        _write(root / f"test_imports_{m:02d}.py", "".join(body))
    return {
        "tests": modules * per_module,
        "modules": modules,
        "loop_iterations": loop_n,
        "target_ms": 50,
    }


def gen_param(root: Path, scale: float) -> dict[str, object]:
    files = 10
    per_file = _scaled(5000, scale)
    for f in range(files):
        _write(
            root / f"test_param_{f:02d}.py",
            "import pytest\n\n\n"
            f'@pytest.mark.parametrize("i", range({per_file}))\n'
            "def test_p(i):\n    pass\n",
        )
    return {"tests": files * per_file, "files": files}


COVERED_MODULE = '''"""Code for the coverage benchmark: branches, a class, a loop."""


class Counter:
    def __init__(self, seed):
        self.seed = seed
        self.total = 0

    def feed(self, n):
        for i in range(n):
            if (i + self.seed) % 15 == 0:
                self.total += 15
            elif i % 3 == 0:
                self.total += 3
            elif i % 5 == 0:
                self.total += 5
            else:
                self.total += 1
        return self.total


def work(seed, n=400):
    counter = Counter(seed)
    value = counter.feed(n)
    if value % 2:
        return value - 1
    return value
'''


def gen_covered(root: Path, scale: float) -> dict[str, object]:
    """A package of 20 modules and 600 tests that run its code: what coverage costs."""
    modules = 20
    tests = _scaled(600, scale, minimum=modules)
    per_module = [tests // modules + (1 if m < tests % modules else 0) for m in range(modules)]
    _write(root / "covpkg" / "__init__.py", '"""Measured by the coverage benchmark."""\n')
    for m, count in enumerate(per_module):
        _write(root / "covpkg" / f"mod_{m:02d}.py", COVERED_MODULE)
        body = [f"from covpkg import mod_{m:02d}\n"]
        for t in range(count):
            body.append(f"\n\ndef test_{t}():\n    assert mod_{m:02d}.work({t}) >= 0\n")
        _write(root / f"test_covered_{m:02d}.py", "".join(body))
    return {"tests": tests, "modules": modules}


def generate(outdir: Path, suites: list[str], scale: float) -> dict[str, dict[str, object]]:
    """Generate ``suites`` under ``outdir``; returns each suite's metadata."""
    outdir.mkdir(parents=True, exist_ok=True)
    loops: dict[tuple[int, bool], int] = {}

    def loop_for(ms: int, in_function: bool) -> int:
        if (ms, in_function) not in loops:
            loops[ms, in_function] = calibrate(ms / 1000, in_function)
        return loops[ms, in_function]

    makers: dict[str, Callable[[Path], dict[str, object]]] = {
        "tiny": lambda r: gen_tiny(r, scale),
        "sleep": lambda r: gen_sleep(r, scale),
        "cpu": lambda r: gen_cpu(r, scale, loop_for(20, True)),
        "imports": lambda r: gen_imports(r, scale, loop_for(50, False)),
        "param": lambda r: gen_param(r, scale),
        "covered": lambda r: gen_covered(r, scale),
        "slowmod": lambda r: gen_slowmod(r, scale),
    }
    result = {}
    for name in suites:
        if name not in makers:
            raise SystemExit(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
        root = outdir / name
        _start_suite(root)
        meta: dict[str, object] = {"suite": name, "scale": scale, "version": GENERATOR_VERSION}
        meta.update(makers[name](root))
        _finish_suite(root, meta)
        result[name] = meta
    return result


def is_current(root: Path, scale: float) -> bool:
    """Whether ``root`` holds a suite generated by this generator version at ``scale``."""
    try:
        meta = json.loads((root / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(meta.get("scale") == scale and meta.get("version") == GENERATOR_VERSION)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink counts and durations")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated suite names")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be > 0")
    suites = [s for s in args.suites.split(",") if s]
    for name, meta in generate(args.outdir, suites, args.scale).items():
        shown = {k: v for k, v in meta.items() if k not in ("suite", "version")}
        print(f"{name}: {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
