"""Fixtures shared by every suite of the demo."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shopcart.api import Shop
from shopcart.discount import DiscountBook
from shopcart.inventory import Inventory, JsonStore
from shopcart.money import Money

CATALOG = {"apple": "0.50", "coffee": "7.99", "mug": "8.50", "teapot": "24.00"}
STOCK = {"apple": 100, "coffee": 20, "mug": 10, "teapot": 2}
DISCOUNTS = {"WELCOME10": 10, "HALFOFF": 50}

HttpJson = Callable[..., tuple[int, Any]]


@pytest.fixture(scope="session")
def make_shop() -> Callable[[Path], Shop]:
    """Build a Shop with the demo catalog, stocked in a JSON store under `root`."""

    def factory(root: Path) -> Shop:
        inventory = Inventory(JsonStore(root))
        for sku, qty in STOCK.items():
            inventory.restock(sku, qty)
        return Shop(
            catalog={sku: Money(price) for sku, price in CATALOG.items()},
            inventory=inventory,
            discounts=DiscountBook(DISCOUNTS),
        )

    return factory


@pytest.fixture(scope="session")
def http_json() -> HttpJson:
    """`http_json(method, url, body=None) -> (status, decoded JSON)`, errors included."""

    def call(
        method: str, url: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())

    return call
