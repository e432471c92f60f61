"""How much more CPU-bound work two processes get done on this machine than one.

The ``cpu`` suite's speed-up is judged against this, not against the core count: on a
shared 2-vCPU guest two busy processes get ~1.6x one process's throughput (ANCHORS). One
measurement runs the same pure-Python loop in one process, then in two at once, and returns
``2 * alone / together`` (the throughput ratio).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

__all__ = ["calibrate", "measure", "paired_shares"]

_LOOP = "n = {n}\ns = 0\nfor i in range(n):\n    s += i * i\n"


def _run(n: int, copies: int) -> float:
    """Seconds until ``copies`` processes, started together, have each run the loop once."""
    code = _LOOP.format(n=n)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(copies)]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"the calibration loop failed with status {proc.returncode}")
    return time.perf_counter() - start


def calibrate(seconds: float = 0.5) -> int:
    """Loop iterations that take about ``seconds`` in one process here."""
    n = 200_000
    while True:
        took = _run(n, 1)
        if took >= 0.2:
            return max(1, round(n * seconds / took))
        n *= 4


def measure(n: int, rounds: int = 3) -> tuple[float, float, float]:
    """(one process alone s, two together s, throughput ratio) for a loop of ``n``.

    Alone and together alternate ``rounds`` times and the medians count, so that a burst of
    other work on the machine skews one sample rather than the ratio.
    """
    alone: list[float] = []
    together: list[float] = []
    for _ in range(rounds):
        alone.append(_run(n, 1))
        together.append(_run(n, 2))
    one, two = statistics.median(alone), statistics.median(together)
    return one, two, 2 * one / two


if __name__ == "__main__":
    loops = calibrate()
    alone, together, ratio = measure(loops)
    print(f"one process {alone:.2f} s, two at once {together:.2f} s: {ratio:.2f}x throughput")


def paired_shares(
    plain: Mapping[int, float],
    variant: Mapping[int, float],
    capacity: Sequence[float],
    startup: float,
) -> list[float]:
    """Each repetition's speed-up (start-up excluded) over that repetition's own capacity.

    ``plain`` and ``variant`` map a repetition (1-based) to its wall seconds; ``capacity`` is
    the probe of each repetition, in order. Pairing keeps a probe that met a busy minute from
    judging runs that did not: this machine's probe alone varies ~2x within one run.
    A repetition missing either run, or with a wall at or below the start-up, is left out.
    """
    shares = []
    for rep, wall in sorted(variant.items()):
        base = plain.get(rep)
        if base is None or rep > len(capacity) or wall <= startup or capacity[rep - 1] <= 0:
            continue
        shares.append((base - startup) / (wall - startup) / capacity[rep - 1])
    return shares
