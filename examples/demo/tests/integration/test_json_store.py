import threading
import time

import pytest

from shopcart.inventory import Inventory, JsonStore, OutOfStock


@pytest.fixture
def store(tmp_path):
    return JsonStore(tmp_path / "db")


@pytest.fixture
def db_round_trip():
    """Stand-in for the latency of a real database: sleep before each call."""

    def wait(seconds: float = 0.2) -> None:
        time.sleep(seconds)

    return wait


def test_save_then_load_round_trips(store):
    store.save("orders", {"o1": {"total": "12.50", "lines": [1, 2]}})
    assert store.load("orders") == {"o1": {"total": "12.50", "lines": [1, 2]}}


def test_missing_key_returns_default(store):
    assert store.load("nothing-here") is None
    assert store.load("nothing-here", {}) == {}


def test_save_replaces_atomically_without_leftovers(store):
    store.save("stock", {"apple": 1})
    store.save("stock", {"apple": 2})
    assert store.load("stock") == {"apple": 2}
    assert sorted(p.name for p in store.root.iterdir()) == ["stock.json"]


def test_keys_lists_documents(store):
    for key in ("b-key", "a_key", "c1"):
        store.save(key, [])
    assert store.keys() == ["a_key", "b-key", "c1"]


def test_inventory_persists_across_instances(store, db_round_trip):
    Inventory(store).restock("mug", 5)
    db_round_trip(0.2)
    again = Inventory(JsonStore(store.root))
    assert again.stock("mug") == 5
    again.reserve({"mug": 2})
    db_round_trip(0.1)
    assert Inventory(store).stock("mug") == 3


def test_reserve_is_all_or_nothing(store, db_round_trip):
    inv = Inventory(store)
    inv.restock("apple", 3)
    inv.restock("teapot", 1)
    db_round_trip(0.2)
    with pytest.raises(OutOfStock) as info:
        inv.reserve({"apple": 2, "teapot": 2})
    assert (info.value.sku, info.value.available) == ("teapot", 1)
    assert (inv.stock("apple"), inv.stock("teapot")) == (3, 1)


def test_concurrent_reservations_never_oversell(store, db_round_trip):
    inv = Inventory(store)
    inv.restock("coffee", 10)
    db_round_trip(0.3)
    sold: list[int] = []

    def buyer() -> None:
        try:
            inv.reserve({"coffee": 3})
            sold.append(3)
        except OutOfStock:
            pass

    threads = [threading.Thread(target=buyer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sold) == 9
    assert inv.stock("coffee") == 1
