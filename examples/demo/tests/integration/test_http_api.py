import pytest

from shopcart.api import ShopServer


@pytest.fixture(scope="module")
def api(make_shop, tmp_path_factory):
    shop = make_shop(tmp_path_factory.mktemp("api-db"))
    with ShopServer(shop, "127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def cart_url(api, http_json):
    status, body = http_json("POST", f"{api.url}/carts")
    assert status == 201
    return f"{api.url}/carts/{body['id']}"


def test_health(api, http_json):
    assert http_json("GET", f"{api.url}/health") == (200, {"status": "ok"})


def test_products_lists_catalog_prices(api, http_json):
    status, body = http_json("GET", f"{api.url}/products")
    assert status == 200
    assert body["teapot"] == "24.00"


def test_new_cart_is_empty(cart_url, http_json):
    status, body = http_json("GET", cart_url)
    assert status == 200
    assert (body["lines"], body["total"]) == ([], "0.00")


def test_add_item_updates_totals(cart_url, http_json):
    http_json("POST", f"{cart_url}/items", {"sku": "coffee", "quantity": 2})
    status, body = http_json("POST", f"{cart_url}/items", {"sku": "apple"})
    assert status == 200
    assert body["subtotal"] == "16.48"


def test_unknown_product_is_404(cart_url, http_json):
    status, body = http_json("POST", f"{cart_url}/items", {"sku": "kettle"})
    assert status == 404
    assert "kettle" in body["error"]


@pytest.mark.parametrize("qty", [0, -3, "2", True])
def test_bad_quantity_is_400(cart_url, http_json, qty):
    status, _ = http_json("POST", f"{cart_url}/items", {"sku": "mug", "quantity": qty})
    assert status == 400


def test_malformed_json_is_400(cart_url, http_json):
    status, body = http_json("POST", f"{cart_url}/items", raw=b"{not json")
    assert (status, body) == (400, {"error": "body is not JSON"})


def test_unknown_cart_is_404(api, http_json):
    status, _ = http_json("GET", f"{api.url}/carts/{'0' * 32}")
    assert status == 404


def test_wrong_method_is_405(cart_url, http_json):
    status, _ = http_json("GET", f"{cart_url}/checkout")
    assert status == 405
