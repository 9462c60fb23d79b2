"""TokenCipher: AES-256-GCM for upstream tokens carried inside the shim's own tokens."""

from __future__ import annotations

import base64

import pytest

from mcp_oauth_shim.config import ConfigurationError
from mcp_oauth_shim.encryption import UPSTREAM_ACCESS_TOKEN, UPSTREAM_REFRESH_TOKEN, DecryptionError, TokenCipher

OLD = "old-secret-of-at-least-32-bytes-oooooooooooo"
NEW = "new-secret-of-at-least-32-bytes-nnnnnnnnnnnn"
PLAINTEXT = "gho_16C7e42F292c6912E7710c838347Ae178B4a"
CONTEXT = ("client-1", "https://api.example.com/mcp")


def cipher(*secrets: str) -> TokenCipher:
    return TokenCipher(list(secrets) or [NEW])


def sealed() -> str:
    return cipher().encrypt(PLAINTEXT, purpose=UPSTREAM_REFRESH_TOKEN, context=CONTEXT)


def test_round_trip() -> None:
    assert cipher().decrypt_text(sealed(), purpose=UPSTREAM_REFRESH_TOKEN, context=CONTEXT) == PLAINTEXT


def test_bytes_round_trip() -> None:
    data = bytes(range(256))
    token = cipher().encrypt(data, purpose="p")
    assert cipher().decrypt(token, purpose="p") == data


def test_output_is_base64url_without_padding() -> None:
    token = sealed()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_plaintext_never_appears_in_the_output() -> None:
    token = sealed()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert PLAINTEXT not in token and PLAINTEXT.encode() not in raw


def test_each_encryption_differs() -> None:
    assert sealed() != sealed()


def flipped(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_every_byte_flip_is_refused() -> None:
    token = sealed()
    length = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert length > 30  # header, nonce, ciphertext and tag are all flipped below
    for index in range(length):
        with pytest.raises(DecryptionError):
            cipher().decrypt(flipped(token, index), purpose=UPSTREAM_REFRESH_TOKEN, context=CONTEXT)


@pytest.mark.parametrize(
    ("purpose", "context"),
    [
        (UPSTREAM_ACCESS_TOKEN, CONTEXT),
        (UPSTREAM_REFRESH_TOKEN, ("client-2", CONTEXT[1])),
        (UPSTREAM_REFRESH_TOKEN, (CONTEXT[0], "https://other.example.com/mcp")),
        (UPSTREAM_REFRESH_TOKEN, (CONTEXT[0],)),
        (UPSTREAM_REFRESH_TOKEN, (*CONTEXT, "extra")),
        (UPSTREAM_REFRESH_TOKEN, (CONTEXT[0] + CONTEXT[1][:5], CONTEXT[1][5:])),
    ],
    ids=["other-purpose", "other-client", "other-resource", "fewer-items", "more-items", "shifted-boundary"],
)
def test_other_associated_data_is_refused(purpose: str, context: tuple[str, ...]) -> None:
    with pytest.raises(DecryptionError, match="another purpose or context"):
        cipher().decrypt(sealed(), purpose=purpose, context=context)


def test_old_key_still_decrypts_after_rotation() -> None:
    token = cipher(OLD).encrypt(PLAINTEXT, purpose="p")
    assert cipher(NEW, OLD).decrypt_text(token, purpose="p") == PLAINTEXT


def test_new_key_encrypts_after_rotation() -> None:
    token = cipher(NEW, OLD).encrypt(PLAINTEXT, purpose="p")
    assert cipher(NEW).decrypt_text(token, purpose="p") == PLAINTEXT


def test_dropped_key_no_longer_decrypts() -> None:
    token = cipher(OLD).encrypt(PLAINTEXT, purpose="p")
    with pytest.raises(DecryptionError, match="not configured"):
        cipher(NEW).decrypt(token, purpose="p")


@pytest.mark.parametrize(
    "token",
    ["", "!!!", "AQ", "A" * 20, "Ag" + "A" * 60, "x" * 20000, "é" * 40, sealed() + "=", sealed()[:-1] + "~"],
    ids=["empty", "not-base64", "too-short", "short-body", "wrong-version", "huge", "non-ascii", "padding", "bad-char"],
)
def test_malformed_ciphertexts_raise_decryption_error_only(token: str) -> None:
    with pytest.raises(DecryptionError):
        cipher().decrypt(token, purpose=UPSTREAM_REFRESH_TOKEN, context=CONTEXT)


def test_non_string_ciphertext_raises_decryption_error() -> None:
    with pytest.raises(DecryptionError):
        cipher().decrypt(None, purpose="p")  # type: ignore[arg-type]


def test_non_text_plaintext_is_refused_by_decrypt_text() -> None:
    token = cipher().encrypt(b"\xff\xfe", purpose="p")
    with pytest.raises(DecryptionError, match="not text"):
        cipher().decrypt_text(token, purpose="p")


@pytest.mark.parametrize("secrets", [[], ["short"]], ids=["none", "too-short"])
def test_unusable_secrets_are_refused(secrets: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        TokenCipher(secrets)


def test_repr_shows_no_key_material() -> None:
    assert repr(cipher(NEW, OLD)) == "TokenCipher(keys=2)"
