"""shopcart: a tiny shopping-cart library used by the pytest-parallel-agents demo."""

from shopcart.cart import Cart, LineItem
from shopcart.discount import DiscountBook, DiscountCode, InvalidDiscountCode
from shopcart.inventory import Inventory, JsonStore, OutOfStock
from shopcart.money import Money
from shopcart.passwords import hash_password, verify_password

__all__ = [
    "Cart",
    "DiscountBook",
    "DiscountCode",
    "InvalidDiscountCode",
    "Inventory",
    "JsonStore",
    "LineItem",
    "Money",
    "OutOfStock",
    "hash_password",
    "verify_password",
]
