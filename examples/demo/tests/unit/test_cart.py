import pytest

from shopcart.cart import Cart, price_lines
from shopcart.discount import DiscountCode
from shopcart.money import Money


@pytest.fixture
def cart():
    c = Cart()
    c.add("apple", Money("0.50"), 4)
    c.add("teapot", Money("24.00"))
    return c


def test_empty_cart_totals_zero():
    assert Cart().subtotal() == Money.zero()
    assert Cart().total() == Money.zero()


def test_subtotal_and_len(cart):
    assert cart.subtotal() == Money("26.00")
    assert len(cart) == 5


def test_adding_same_sku_merges_lines(cart):
    cart.add("apple", Money("0.50"), 2)
    assert [(li.sku, li.quantity) for li in cart.lines] == [("apple", 6), ("teapot", 1)]


@pytest.mark.parametrize("qty", [0, -1])
def test_non_positive_quantity_rejected(qty):
    with pytest.raises(ValueError, match="positive"):
        Cart().add("apple", Money("1"), qty)


def test_currency_mismatch_rejected():
    with pytest.raises(ValueError, match="USD"):
        Cart("EUR").add("apple", Money("1", "USD"))


def test_price_change_while_in_cart_rejected(cart):
    with pytest.raises(ValueError, match="price"):
        cart.add("apple", Money("0.40"))


def test_remove_some_then_all(cart):
    cart.remove("apple", 3)
    assert cart.lines[0].quantity == 1
    cart.remove("apple")
    assert [li.sku for li in cart.lines] == ["teapot"]


def test_remove_unknown_sku_raises(cart):
    with pytest.raises(KeyError):
        cart.remove("kettle")


@pytest.mark.parametrize(
    ("pct", "discount", "total"),
    [(10, "2.60", "23.40"), (50, "13.00", "13.00"), (100, "26.00", "0.00")],
)
def test_discount_applies_to_subtotal(cart, pct, discount, total):
    cart.discount = DiscountCode("TEST", pct)
    assert cart.discount_amount() == Money(discount)
    assert cart.total() == Money(total)


def test_line_total():
    line = Cart().add("mug", Money("8.50"), 3)
    assert line.total == Money("25.50")


def test_price_lines():
    assert price_lines([(Money("0.01"), 1)] * 100) == Money("1.00")
    assert price_lines([], "USD") == Money.zero("USD")
    with pytest.raises(ValueError, match="currency mismatch"):
        price_lines([(Money("1", "USD"), 1)])
