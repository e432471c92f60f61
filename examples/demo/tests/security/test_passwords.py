import hmac

from shopcart import passwords
from shopcart.passwords import hash_password, verify_password

FAST = 1_000  # iterations: the cost factor is not what these tests are about


def test_hash_round_trip_and_wrong_password():
    encoded = hash_password("correct horse", iterations=FAST)
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horsf", encoded)


def test_same_password_gets_different_salts():
    assert hash_password("hunter2", iterations=FAST) != hash_password("hunter2", iterations=FAST)


def test_default_cost_is_not_trivially_low():
    assert hash_password("pw").split("$")[1] == str(passwords.DEFAULT_ITERATIONS)
    assert passwords.DEFAULT_ITERATIONS >= 100_000


def test_digest_comparison_is_constant_time(monkeypatch):
    calls = []
    real_compare = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(passwords.hmac, "compare_digest", spy)
    assert verify_password("s3cret", hash_password("s3cret", iterations=FAST))
    assert len(calls) == 1


def test_malformed_hashes_never_verify():
    malformed = ["", "plain", "md5$1$00$00", "pbkdf2_sha256$0$00$00", "pbkdf2_sha256$x$zz$00"]
    assert [verify_password("anything", encoded) for encoded in malformed] == [False] * 5
