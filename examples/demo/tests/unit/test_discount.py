import pytest

from shopcart.discount import DiscountBook, DiscountCode, InvalidDiscountCode, normalise_code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("WELCOME10", "WELCOME10"), ("  welcome10 ", "WELCOME10"), ("ab12", "AB12")],
)
def test_normalise_valid_codes(raw, expected):
    assert normalise_code(raw) == expected


@pytest.mark.parametrize("raw", ["ABC", "A" * 17, "WELCOME-10", "", "   "])
def test_malformed_codes_rejected(raw):
    with pytest.raises(InvalidDiscountCode):
        normalise_code(raw)


def test_lookup_is_case_insensitive():
    book = DiscountBook({"WELCOME10": 10})
    assert book.lookup("welcome10") == DiscountCode("WELCOME10", 10)


def test_unknown_code_rejected():
    with pytest.raises(InvalidDiscountCode, match="unknown"):
        DiscountBook({"WELCOME10": 10}).lookup("GOODBYE10")


@pytest.mark.parametrize("pct", [0, 101, -5])
def test_percent_out_of_range(pct):
    with pytest.raises(ValueError):
        DiscountCode("BAD1", pct)


def test_book_add_and_len():
    book = DiscountBook()
    book.add("spring25", 25)
    assert len(book) == 1
    assert book.lookup("SPRING25").percent == 25
