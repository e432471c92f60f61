"""Coarse speed budgets. Bounds are generous: they catch accidental O(n^2), not noise."""

import time
from decimal import Decimal

from shopcart.cart import Cart, price_lines
from shopcart.discount import normalise_code
from shopcart.money import Money

BUDGET_S = 5.0


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def test_price_200k_line_items():
    prices = [Money(Decimal(cents) / 100) for cents in range(99, 100_000, 199)]
    lines = [(prices[i % len(prices)], i % 7 + 1) for i in range(200_000)]
    total, elapsed = timed(price_lines, lines)
    expected = sum(p.amount * q for p, q in lines)
    assert total == Money(expected)
    assert elapsed < BUDGET_S, f"pricing 200k lines took {elapsed:.2f}s"


def test_cart_with_50k_distinct_products():
    def fill_and_total():
        cart = Cart()
        for i in range(50_000):
            cart.add(f"sku-{i}", Money("1.25"), 1 + i % 3)
            if i % 10 == 0:
                cart.remove(f"sku-{i}")
        return cart.total()

    total, elapsed = timed(fill_and_total)
    assert total == Money("1.25") * sum(1 + i % 3 for i in range(50_000) if i % 10)
    assert elapsed < BUDGET_S, f"filling a 50k-line cart took {elapsed:.2f}s"


def test_validate_300k_discount_codes():
    codes = [f"promo{i:06d}" for i in range(300_000)]
    normalised, elapsed = timed(lambda: [normalise_code(c) for c in codes])
    assert normalised[-1] == "PROMO299999"
    assert elapsed < BUDGET_S, f"validating 300k codes took {elapsed:.2f}s"
