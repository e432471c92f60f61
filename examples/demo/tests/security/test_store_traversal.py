import pytest

from shopcart.inventory import JsonStore

TRAVERSAL_KEYS = [
    "../outside",
    "../../etc/passwd",
    "/etc/passwd",
    "sub/dir",
    "..",
    ".hidden",
    "stock\x00",
    "",
]


def test_path_traversal_keys_are_rejected(tmp_path):
    store = JsonStore(tmp_path / "db")
    for key in TRAVERSAL_KEYS:
        with pytest.raises(ValueError, match="invalid store key"):
            store.save(key, {"pwned": True})
        with pytest.raises(ValueError, match="invalid store key"):
            store.load(key)
    assert list(tmp_path.rglob("*.json")) == []


def test_symlinked_document_escaping_the_store_is_refused(tmp_path):
    store = JsonStore(tmp_path / "db")
    (tmp_path / "secret.json").write_text('{"token": "s3cret"}')
    (store.root / "stock.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(ValueError, match="escapes"):
        store.load("stock")
