"""The key format: what parses, what never does (without raising), and the stored HMAC."""

import hashlib
import hmac

import pytest

from app.auth.keys import MAX_KEY_LENGTH, hash_secret, is_key_id, new_key, parse_key


def test_a_new_key_parses_back_into_its_id_and_secret() -> None:
    key_id, secret, raw = new_key()

    parsed = parse_key(raw)

    assert parsed is not None
    assert (parsed.id, parsed.secret) == (key_id, secret)
    assert raw == f"sv_{key_id}_{secret}"
    assert is_key_id(key_id)
    assert len(secret) >= 32
    assert secret not in repr(parsed)


def test_new_keys_differ() -> None:
    assert len({new_key()[2] for _ in range(200)}) == 200
    assert len({new_key()[0] for _ in range(200)}) == 200


def test_a_secret_containing_underscores_and_dashes_parses() -> None:
    parsed = parse_key("sv_abcdef012345_" + "a_b-" * 10)

    assert parsed is not None
    assert parsed.id == "abcdef012345"
    assert parsed.secret == "a_b-" * 10


GOOD_SECRET = "A" * 43


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"sv_abcdef012345_" + GOOD_SECRET.encode(),
        42,
        "",
        " ",
        "sv_",
        "sv__",
        "Bearer sv_abcdef012345_" + GOOD_SECRET,
        "sv_abcdef012345_" + GOOD_SECRET + "\n",
        " sv_abcdef012345_" + GOOD_SECRET,
        "SV_abcdef012345_" + GOOD_SECRET,
        "sk_abcdef012345_" + GOOD_SECRET,
        "sv_ABCDEF012345_" + GOOD_SECRET,
        "sv_abcdef01234_" + GOOD_SECRET,
        "sv_abcdef0123456_" + GOOD_SECRET,
        "sv_abcdef012345" + GOOD_SECRET,
        "sv_abcdef012345_" + "A" * 31,
        "sv_abcdef012345_" + "A" * 129,
        "sv_abcdef012345_" + "A" * 100_000,
        "sv_abcdef012345_" + "A" * 42 + "=",
        "sv_abcdef012345_" + "A" * 42 + "é",
        "sv_abcdef01234٣_" + GOOD_SECRET,
        "sv_abcdef012345_" + "A" * 42 + "\x00",
        "sv_abc/ef012345_" + GOOD_SECRET,
        "sv_abcdef012345_" + "A" * 20 + " " + "A" * 20,
    ],
)
def test_anything_malformed_is_none_and_never_raises(raw: object) -> None:
    assert parse_key(raw) is None


def test_parsing_is_bounded_in_length() -> None:
    assert MAX_KEY_LENGTH < 200
    assert parse_key("sv_abcdef012345_" + "A" * (MAX_KEY_LENGTH - 16)) is not None
    assert parse_key("sv_abcdef012345_" + "A" * (MAX_KEY_LENGTH - 15)) is None


def test_the_hash_is_hmac_sha256_keyed_by_the_pepper() -> None:
    expected = hmac.new(b"pepper", b"secret", hashlib.sha256).hexdigest()

    assert hash_secret("secret", "pepper") == expected
    assert hash_secret("secret", "other pepper") != expected
