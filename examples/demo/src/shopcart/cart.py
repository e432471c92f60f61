"""A shopping cart of line items, with an optional percentage discount."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from shopcart.discount import DiscountCode
from shopcart.money import Money


@dataclass(frozen=True)
class LineItem:
    sku: str
    unit_price: Money
    quantity: int

    @property
    def total(self) -> Money:
        return self.unit_price * self.quantity


class Cart:
    def __init__(self, currency: str = "EUR") -> None:
        self.currency = currency
        self._lines: dict[str, LineItem] = {}
        self.discount: DiscountCode | None = None

    def add(self, sku: str, unit_price: Money, quantity: int = 1) -> LineItem:
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, got {quantity}")
        if unit_price.currency != self.currency:
            raise ValueError(f"cart is in {self.currency}, item priced in {unit_price.currency}")
        if unit_price.amount < 0:
            raise ValueError("unit price cannot be negative")
        existing = self._lines.get(sku)
        if existing is not None:
            if existing.unit_price != unit_price:
                raise ValueError(f"price of {sku} changed while in cart")
            quantity += existing.quantity
        line = LineItem(sku, unit_price, quantity)
        self._lines[sku] = line
        return line

    def remove(self, sku: str, quantity: int | None = None) -> None:
        line = self._lines[sku]
        if quantity is None or quantity >= line.quantity:
            del self._lines[sku]
        else:
            self._lines[sku] = LineItem(sku, line.unit_price, line.quantity - quantity)

    @property
    def lines(self) -> list[LineItem]:
        return list(self._lines.values())

    def __len__(self) -> int:
        return sum(line.quantity for line in self._lines.values())

    def subtotal(self) -> Money:
        return price_lines(
            ((line.unit_price, line.quantity) for line in self._lines.values()), self.currency
        )

    def discount_amount(self) -> Money:
        if self.discount is None:
            return Money.zero(self.currency)
        return self.subtotal().percent(self.discount.percent)

    def total(self) -> Money:
        return self.subtotal() - self.discount_amount()


def price_lines(lines: Iterable[tuple[Money, int]], currency: str = "EUR") -> Money:
    """Total many `(unit_price, quantity)` pairs, building a single Money at the end.

    Unit prices are already whole cents, so rounding once is exact.
    """
    total = Decimal(0)
    for unit_price, quantity in lines:
        if unit_price.currency != currency:
            raise ValueError(f"currency mismatch: {currency} vs {unit_price.currency}")
        total += unit_price.amount * quantity
    return Money(total, currency)
