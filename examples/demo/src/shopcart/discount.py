"""Discount codes: strict format validation, then lookup in a code book."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Only upper-case letters and digits: anything else (quotes, semicolons,
# whitespace, markup, control characters) is rejected before any lookup.
_CODE_RE = re.compile(r"[A-Z0-9]{4,16}")


class InvalidDiscountCode(ValueError):
    """The code is malformed, or not in the book."""


@dataclass(frozen=True)
class DiscountCode:
    code: str
    percent: int

    def __post_init__(self) -> None:
        if not 1 <= self.percent <= 100:
            raise ValueError(f"discount percent out of range: {self.percent}")


def normalise_code(raw: str) -> str:
    """Upper-case and strip `raw`; raise InvalidDiscountCode unless it is well formed."""
    if not isinstance(raw, str):
        raise InvalidDiscountCode("discount code must be a string")
    code = raw.strip().upper()
    if not code.isascii() or _CODE_RE.fullmatch(code) is None:
        raise InvalidDiscountCode(f"malformed discount code: {raw!r}")
    return code


class DiscountBook:
    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self._codes: dict[str, DiscountCode] = {}
        for code, pct in (codes or {}).items():
            self.add(code, pct)

    def add(self, code: str, percent: int) -> DiscountCode:
        entry = DiscountCode(normalise_code(code), percent)
        self._codes[entry.code] = entry
        return entry

    def lookup(self, raw: str) -> DiscountCode:
        code = normalise_code(raw)
        try:
            return self._codes[code]
        except KeyError:
            raise InvalidDiscountCode(f"unknown discount code: {code}") from None

    def __len__(self) -> int:
        return len(self._codes)
