"""Drive the HTTP API the way a shopper's browser would, start to finish."""

import time

import pytest

from shopcart.api import ShopServer


@pytest.fixture(scope="module")
def shop_url(make_shop, tmp_path_factory):
    shop = make_shop(tmp_path_factory.mktemp("e2e-db"))
    with ShopServer(shop) as server:
        yield server.url


@pytest.fixture
def browser(shop_url, http_json):
    """A tiny 'browser': each request waits a little, like a page load would."""

    def visit(method, path, body=None, *, page_load=0.05):
        time.sleep(page_load)
        return http_json(method, f"{shop_url}{path}", body)

    return visit


def new_cart(browser):
    status, body = browser("POST", "/carts")
    assert status == 201
    return f"/carts/{body['id']}"


def test_browse_fill_cart_and_checkout(browser):
    status, products = browser("GET", "/products")
    assert status == 200 and "coffee" in products
    cart = new_cart(browser)
    browser("POST", f"{cart}/items", {"sku": "coffee", "quantity": 2})
    browser("POST", f"{cart}/items", {"sku": "mug"})
    status, receipt = browser("POST", f"{cart}/checkout", {})
    assert status == 200
    assert receipt["status"] == "paid"
    assert receipt["total"] == "24.48"
    assert len(receipt["order"]) == 32


def test_checkout_with_discount_code(browser):
    cart = new_cart(browser)
    browser("POST", f"{cart}/items", {"sku": "apple", "quantity": 10})
    status, body = browser("POST", f"{cart}/discount", {"code": "welcome10"})
    assert status == 200
    assert (body["subtotal"], body["discount"], body["total"]) == ("5.00", "0.50", "4.50")
    status, receipt = browser("POST", f"{cart}/checkout", {})
    assert (status, receipt["total"]) == (200, "4.50")


def test_cart_is_gone_after_checkout(browser):
    cart = new_cart(browser)
    browser("POST", f"{cart}/items", {"sku": "apple"})
    assert browser("POST", f"{cart}/checkout", {})[0] == 200
    status, _ = browser("GET", cart, page_load=0.2)
    assert status == 404


def test_empty_cart_cannot_check_out(browser):
    cart = new_cart(browser)
    status, body = browser("POST", f"{cart}/checkout", {}, page_load=0.3)
    assert (status, body["error"]) == (400, "cart is empty")


def test_out_of_stock_leaves_cart_intact(browser):
    cart = new_cart(browser)
    browser("POST", f"{cart}/items", {"sku": "teapot", "quantity": 3})
    status, body = browser("POST", f"{cart}/checkout", {}, page_load=0.2)
    assert status == 409
    assert "teapot" in body["error"]
    status, body = browser("GET", cart)
    assert (status, body["lines"][0]["quantity"]) == (200, 3)


def test_invalid_discount_code_is_refused(browser):
    cart = new_cart(browser)
    browser("POST", f"{cart}/items", {"sku": "mug"})
    status, body = browser("POST", f"{cart}/discount", {"code": "NOPE2024"}, page_load=0.2)
    assert status == 400
    assert "unknown" in body["error"]
    assert browser("GET", cart)[1]["discount"] == "0.00"
