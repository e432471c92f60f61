"""Stock levels kept in a directory of JSON documents."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

# Keys become file names, so they are restricted to a safe alphabet:
# no separators, no dots, hence no `..` and no absolute paths.
_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class OutOfStock(Exception):
    def __init__(self, sku: str, wanted: int, available: int) -> None:
        super().__init__(f"{sku}: wanted {wanted}, only {available} left")
        self.sku, self.wanted, self.available = sku, wanted, available


class JsonStore:
    """One JSON document per key under `root`, written atomically."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        if not isinstance(key, str) or _KEY_RE.fullmatch(key) is None:
            raise ValueError(f"invalid store key: {key!r}")
        path = (self.root / f"{key}.json").resolve()
        if path.parent != self.root:  # defence in depth against symlink tricks
            raise ValueError(f"store key escapes the store: {key!r}")
        return path

    def load(self, key: str, default: Any = None) -> Any:
        try:
            return json.loads(self.path_for(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default

    def save(self, key: str, data: Any) -> None:
        path = self.path_for(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.json") if not p.name.startswith("."))


class Inventory:
    def __init__(self, store: JsonStore, key: str = "stock") -> None:
        self.store, self.key = store, key
        self._lock = threading.Lock()

    def _levels(self) -> dict[str, int]:
        return dict(self.store.load(self.key, {}))

    def stock(self, sku: str) -> int:
        return self._levels().get(sku, 0)

    def restock(self, sku: str, quantity: int) -> int:
        if quantity <= 0:
            raise ValueError("restock quantity must be positive")
        with self._lock:
            levels = self._levels()
            levels[sku] = levels.get(sku, 0) + quantity
            self.store.save(self.key, levels)
            return levels[sku]

    def reserve(self, wanted: dict[str, int]) -> None:
        """Take all of `wanted` out of stock, or nothing at all."""
        with self._lock:
            levels = self._levels()
            for sku, qty in wanted.items():
                if levels.get(sku, 0) < qty:
                    raise OutOfStock(sku, qty, levels.get(sku, 0))
            for sku, qty in wanted.items():
                levels[sku] -= qty
            self.store.save(self.key, levels)
