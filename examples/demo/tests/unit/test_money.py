from decimal import Decimal

import pytest

from shopcart.money import Money


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", "1.00"),
        ("1.005", "1.01"),
        ("-2.345", "-2.35"),
        (Decimal("19.999"), "20.00"),
    ],
)
def test_amount_is_rounded_half_up_to_cents(raw, expected):
    assert Money(raw).amount == Decimal(expected)


def test_float_is_rejected():
    with pytest.raises(TypeError):
        Money(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["abc", "NaN", "Infinity"])
def test_garbage_amount_is_rejected(raw):
    with pytest.raises(ValueError):
        Money(raw)


@pytest.mark.parametrize("currency", ["EURO", "E1R", ""])
def test_bad_currency_is_rejected(currency):
    with pytest.raises(ValueError):
        Money("1", currency)


def test_currency_is_upper_cased():
    assert Money("1", "usd").currency == "USD"


def test_add_and_subtract():
    assert Money("0.10") + Money("0.20") == Money("0.30")
    assert Money("5") - Money("7.25") == Money("-2.25")


def test_mixing_currencies_fails():
    with pytest.raises(ValueError, match="currency mismatch"):
        Money("1", "EUR") + Money("1", "USD")


@pytest.mark.parametrize("qty", [0, 3, 1000])
def test_multiply_by_quantity(qty):
    assert Money("2.50") * qty == Money(Decimal("2.50") * qty)
    assert qty * Money("2.50") == Money("2.50") * qty


@pytest.mark.parametrize("factor", [1.5, True, "2"])
def test_multiply_by_non_int_fails(factor):
    with pytest.raises(TypeError):
        Money("1") * factor


@pytest.mark.parametrize(
    ("amount", "pct", "expected"),
    [("100", 10, "10.00"), ("19.99", 15, "3.00"), ("0.05", 50, "0.03")],
)
def test_percent(amount, pct, expected):
    assert Money(amount).percent(pct) == Money(expected)


def test_str_and_zero():
    assert str(Money("3.5")) == "EUR 3.50"
    assert Money.zero("GBP") == Money("0", "GBP")
