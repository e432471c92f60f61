"""A small JSON HTTP API over the cart, served from a background thread."""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shopcart.cart import Cart
from shopcart.discount import DiscountBook, InvalidDiscountCode
from shopcart.inventory import Inventory, OutOfStock
from shopcart.money import Money

_CART_RE = re.compile(r"/carts/([0-9a-f]{32})(?:/(items|discount|checkout))?")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Shop:
    catalog: dict[str, Money]
    inventory: Inventory
    discounts: DiscountBook = field(default_factory=DiscountBook)
    carts: dict[str, Cart] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def cart_json(cart_id: str, cart: Cart) -> dict[str, Any]:
    return {
        "id": cart_id,
        "lines": [
            {"sku": li.sku, "quantity": li.quantity, "unit_price": str(li.unit_price.amount)}
            for li in cart.lines
        ],
        "subtotal": str(cart.subtotal().amount),
        "discount": str(cart.discount_amount().amount),
        "total": str(cart.total().amount),
    }


class _Handler(BaseHTTPRequestHandler):
    server: ShopServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            status, body = self._route(method, self.path.split("?", 1)[0])
        except ApiError as exc:
            status, body = exc.status, {"error": str(exc)}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return data

    def _route(self, method: str, path: str) -> tuple[HTTPStatus, dict[str, Any]]:
        shop = self.server.shop
        if (method, path) == ("GET", "/health"):
            return HTTPStatus.OK, {"status": "ok"}
        if (method, path) == ("GET", "/products"):
            return HTTPStatus.OK, {s: str(p.amount) for s, p in shop.catalog.items()}
        if (method, path) == ("POST", "/carts"):
            cart_id = uuid.uuid4().hex
            with shop.lock:
                shop.carts[cart_id] = Cart()
            return HTTPStatus.CREATED, {"id": cart_id}
        match = _CART_RE.fullmatch(path)
        if match is None or match[1] not in shop.carts:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource: {path}")
        cart_id, action = match[1], match[2]
        cart = shop.carts[cart_id]
        if method == "GET" and action is None:
            return HTTPStatus.OK, cart_json(cart_id, cart)
        if method != "POST" or action is None:
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}")
        body = self._body()
        with shop.lock:
            if action == "items":
                sku, qty = body.get("sku"), body.get("quantity", 1)
                if sku not in shop.catalog:
                    raise ApiError(HTTPStatus.NOT_FOUND, f"unknown product: {sku}")
                if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
                    raise ApiError(HTTPStatus.BAD_REQUEST, "quantity must be a positive int")
                cart.add(sku, shop.catalog[sku], qty)
            elif action == "discount":
                try:
                    cart.discount = shop.discounts.lookup(body.get("code", ""))
                except InvalidDiscountCode as exc:
                    raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from None
            else:
                return HTTPStatus.OK, self._checkout(shop, cart_id, cart)
            return HTTPStatus.OK, cart_json(cart_id, cart)

    @staticmethod
    def _checkout(shop: Shop, cart_id: str, cart: Cart) -> dict[str, Any]:
        if not cart.lines:
            raise ApiError(HTTPStatus.BAD_REQUEST, "cart is empty")
        try:
            shop.inventory.reserve({li.sku: li.quantity for li in cart.lines})
        except OutOfStock as exc:
            raise ApiError(HTTPStatus.CONFLICT, str(exc)) from None
        receipt = cart_json(cart_id, cart) | {"order": uuid.uuid4().hex, "status": "paid"}
        del shop.carts[cart_id]
        return receipt


class ShopServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, shop: Shop, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.shop = shop
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ShopServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
