"""The benchmark's generated suites (benchmarks/generate.py): what the runner relies on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import generate


def test_the_slow_module_comes_last_and_its_sleeps_are_the_bound(tmp_path: Path) -> None:
    meta = generate.generate(tmp_path, ["slowmod"], 0.5)["slowmod"]
    root = tmp_path / "slowmod"
    files = sorted(p.name for p in root.glob("test_*.py"))
    # pytest collects files in name order: the slow module is met last, after the quick ones.
    assert files[-1] == "test_zz_slow.py" and len(files) == 11
    slow = (root / "test_zz_slow.py").read_text()
    assert slow.count("def test_") == 20 and slow.count("time.sleep(0.1)") == 20
    quick = sum(p.read_text().count("def test_") for p in root.glob("test_quick_*.py"))
    assert meta["tests"] == quick + 20 == 1020
    info = json.loads((root / "durations.json").read_text())
    assert info["total"] == pytest.approx(2.0) and info["longest"] == 0.1
    assert generate.is_current(root, 0.5) and not generate.is_current(root, 1.0)
