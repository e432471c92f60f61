import pytest

from shopcart.api import ShopServer
from shopcart.discount import DiscountBook, InvalidDiscountCode

HOSTILE_CODES = [
    "' OR '1'='1",
    "WELCOME10'; DROP TABLE orders;--",
    "<script>alert(1)</script>",
    "WELCOME10\x00",
    "WELCOME10\r\nSet-Cookie: admin=1",
    "".join(chr(ord(c) + 0xFEE0) for c in "WELCOME10"),  # full-width look-alike
]


@pytest.mark.parametrize("code", HOSTILE_CODES)
def test_hostile_codes_never_reach_the_book(code):
    with pytest.raises(InvalidDiscountCode, match="malformed"):
        DiscountBook({"WELCOME10": 10}).lookup(code)


def test_hostile_codes_are_refused_over_http(make_shop, tmp_path, http_json):
    with ShopServer(make_shop(tmp_path)) as server:
        _, cart = http_json("POST", f"{server.url}/carts")
        url = f"{server.url}/carts/{cart['id']}/discount"
        results = [http_json("POST", url, {"code": code}) for code in HOSTILE_CODES]
    assert [status for status, _ in results] == [400] * len(HOSTILE_CODES)
    assert all("malformed" in body["error"] for _, body in results)
