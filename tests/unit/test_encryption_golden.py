"""Ciphertexts made by earlier versions still decrypt: the wire form and the associated data
(version, key id, then each length-prefixed purpose and context item) never change."""

from __future__ import annotations

import pytest

from mcp_oauth_shim.encryption import UPSTREAM_REFRESH_TOKEN, DecryptionError, TokenCipher

SECRET = "golden-secret-of-at-least-32-bytes-ggggggggg"
CONTEXT = ("fp-client", "https://api.example.com/mcp", "user-1")
# Made with this secret before the associated data was built in one expression.
WITH_CONTEXT = "AdIn6agMCVuUbz5apj-mTSOTq3wzc5nHI8e8f3IYJZ5f1SmYoZLZHP91ExWbyA"
WITHOUT_CONTEXT = "AdIn6ah0sKKJ__eqdKFJj1xHTigekrOUYcAX0E8tYJd8nj5haLvyuCj-dw"


@pytest.mark.parametrize(
    ("ciphertext", "purpose", "context", "plaintext"),
    [(WITH_CONTEXT, UPSTREAM_REFRESH_TOKEN, CONTEXT, "upstream-rt-1"), (WITHOUT_CONTEXT, "p", (), "no-context")],
    ids=["with-context", "without-context"],
)
def test_a_ciphertext_of_an_earlier_version_still_decrypts(ciphertext: str, purpose: str, context: tuple[str, ...], plaintext: str) -> None:
    assert TokenCipher([SECRET]).decrypt_text(ciphertext, purpose=purpose, context=context) == plaintext


def test_context_items_are_length_prefixed_so_a_shifted_boundary_does_not_decrypt() -> None:
    shifted = ("fp-clienthttps://api.example.com/mcp", "", "user-1")
    with pytest.raises(DecryptionError):
        TokenCipher([SECRET]).decrypt_text(WITH_CONTEXT, purpose=UPSTREAM_REFRESH_TOKEN, context=shifted)
