"""Sealed values: itsdangerous's TimedSerializer wire format, checked in that order: signature,
then age; one salt per purpose; keys rotate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import TimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from mcp_oauth_shim.sealing import (
    CODE,
    MAX_SEALED_LENGTH,
    REFRESH,
    STATE,
    Sealer,
    SealError,
    _KeyedMac,
)
from tests.shim.kit import sealed_at

KEY = "k" * 48
OLD_KEY = "o" * 48
VALUE = {"u": "upstream-code", "c": "digest", "r": "http://127.0.0.1:53682/cb", "rg": 1, "sc": "openid"}


class _CompactJSON:
    """The payload serializer the shim's format uses, written for itsdangerous."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        return base64_encode(json.dumps(value, separators=(",", ":")).encode())

    @staticmethod
    def loads(payload: bytes | str) -> Any:
        return json.loads(base64_decode(payload))


def reference(purpose: str, key: str = KEY) -> TimedSerializer:
    return TimedSerializer(key, salt=purpose, serializer=_CompactJSON, signer_kwargs={"digest_method": hashlib.sha256})


def test_a_sealed_value_opens_with_itsdangerous() -> None:
    sealed = Sealer([KEY]).seal(CODE, VALUE)
    assert reference(CODE).loads(sealed, max_age=60) == VALUE


def test_a_value_sealed_by_itsdangerous_opens() -> None:
    """Client ids and refresh tokens issued by versions that signed through itsdangerous."""
    sealed = reference(REFRESH).dumps(VALUE).decode()
    assert Sealer([KEY]).unseal(REFRESH, sealed, max_age=60) == VALUE


def test_the_same_value_sealed_in_the_same_second_is_byte_identical_to_itsdangerous() -> None:
    sealer, ref = Sealer([KEY]), reference(STATE)
    for _ in range(3):  # a second boundary can fall between the two calls
        ours, theirs = sealer.seal(STATE, VALUE), ref.dumps(VALUE).decode()
        if ours.split(".")[1] == theirs.split(".")[1]:
            assert ours == theirs
            return
    pytest.fail("three second boundaries in a row")


@pytest.mark.parametrize(
    "value",
    [{"n": "café ☕"}, {"n": "\ud800 lone surrogate"}, ["a", 1, None, True], "plain", 0, {"nested": {"x": [1, {"y": ""}]}}],
)
def test_values_round_trip(value: Any) -> None:
    sealer = Sealer([KEY])
    sealed = sealer.seal(CODE, value)
    assert sealed.isascii() and all(ch.isalnum() or ch in "-_." for ch in sealed)
    assert sealer.unseal(CODE, sealed, max_age=60) == value


def test_the_signing_time_is_returned() -> None:
    before = int(time.time())
    _, signed_at = Sealer([KEY]).unseal_timed(CODE, Sealer([KEY]).seal(CODE, VALUE), max_age=60)
    assert before <= signed_at <= time.time()


def test_the_newest_key_signs_and_older_keys_still_open() -> None:
    rotated = Sealer([KEY, OLD_KEY])
    from_before_rotation = Sealer([OLD_KEY]).seal(CODE, VALUE)
    assert rotated.unseal(CODE, from_before_rotation, max_age=60) == VALUE
    assert Sealer([KEY]).unseal(CODE, rotated.seal(CODE, VALUE), max_age=60) == VALUE
    with pytest.raises(SealError):
        Sealer([OLD_KEY]).unseal(CODE, rotated.seal(CODE, VALUE), max_age=60)


def test_a_dropped_key_no_longer_opens() -> None:
    sealed = Sealer([OLD_KEY]).seal(CODE, VALUE)
    with pytest.raises(SealError, match="invalid signature"):
        Sealer([KEY]).unseal(CODE, sealed, max_age=60)


def test_a_value_sealed_for_one_purpose_does_not_open_for_another() -> None:
    sealer = Sealer([KEY])
    with pytest.raises(SealError, match="invalid signature"):
        sealer.unseal(REFRESH, sealer.seal(CODE, VALUE), max_age=60)


@pytest.mark.parametrize("age", [61, 3600, -5], ids=["just-expired", "long-expired", "from-the-future"])
def test_a_value_outside_its_lifetime_is_expired(age: int) -> None:
    with pytest.raises(SealError, match="expired"):
        Sealer([KEY]).unseal(CODE, sealed_at(CODE, VALUE, int(time.time()) - age, key=KEY), max_age=60)


def test_a_value_at_the_end_of_its_lifetime_still_opens() -> None:
    assert Sealer([KEY]).unseal(CODE, sealed_at(CODE, VALUE, int(time.time()) - 50, key=KEY), max_age=60) == VALUE


def _tamper(sealed: str, part: int, change: str) -> str:
    parts = sealed.split(".")
    parts[part] = change if change != "flip" else parts[part][:-2] + ("A" if parts[part][-2] != "A" else "B") + parts[part][-1]
    return ".".join(parts)


@pytest.mark.parametrize(
    ("part", "change"),
    [
        (0, "flip"),  # payload
        (0, base64.urlsafe_b64encode(b'{"u":"forged"}').rstrip(b"=").decode()),
        (1, "flip"),  # timestamp: a replay cannot be made younger
        (2, "flip"),  # signature
        (2, ""),
        (2, "not base64 !"),
    ],
)
def test_a_tampered_value_is_refused(part: int, change: str) -> None:
    sealed = Sealer([KEY]).seal(CODE, VALUE)
    with pytest.raises(SealError, match="invalid signature"):
        Sealer([KEY]).unseal(CODE, _tamper(sealed, part, change), max_age=60)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed"),
        (None, "malformed"),
        (b"bytes.are.refused", "malformed"),
        ("x" * (MAX_SEALED_LENGTH + 1), "malformed"),
        ("caf\u00e9.abc.def", "malformed"),
        ("no-dots-at-all", "invalid signature"),
        ("..", "invalid signature"),
    ],
)
def test_a_malformed_value_is_refused_with_its_reason(token: Any, reason: str) -> None:
    with pytest.raises(SealError) as info:
        Sealer([KEY]).unseal(CODE, token, max_age=60)
    assert info.value.reason == reason


@pytest.mark.parametrize("keys", [[], ["short"], [KEY, b"x" * 31]])
def test_weak_key_sets_are_refused(keys: list[str | bytes]) -> None:
    from mcp_oauth_shim import ConfigurationError

    with pytest.raises(ConfigurationError):
        Sealer(keys)


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=200), message=st.binary(max_size=2000))
def test_the_prepared_mac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    """The seal's MAC against the standard library's HMAC (RFC 2104), keys shorter than, as
    long as and longer than SHA-256's 64-byte block."""
    assert _KeyedMac(key).digest(message) == hmac.new(key, message, hashlib.sha256).digest()


def test_the_prepared_mac_gives_the_same_digest_for_every_message_in_turn() -> None:
    """Its hash states are copied, never consumed: the second message is not chained to the first."""
    mac = _KeyedMac(b"k" * 32)
    first = mac.digest(b"one")
    mac.digest(b"two")
    assert mac.digest(b"one") == first == hmac.new(b"k" * 32, b"one", hashlib.sha256).digest()
