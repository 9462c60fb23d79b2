"""Encrypting the IdP's tokens that travel inside the shim's own tokens (AEAD, AES-256-GCM).

In issued-token mode the shim keeps no store: the upstream refresh token rides inside the
shim's refresh token, and the upstream access token may ride inside the shim's access token.
Signing would only protect them from change; they must also stay unreadable to the client that
holds the outer token, so they are encrypted with an AEAD (RFC 5116, AES-256-GCM as specified
in NIST SP 800-38D).

Keys: one AES-256 key per secret in ``secret_keys`` (newest first), derived by HKDF-SHA256
(RFC 5869) with a label of its own, so no key here equals a signature key or an HMAC key of
:mod:`~mcp_oauth_shim.sealing`. The newest encrypts; every one decrypts (rotation: add a new
secret first, keep the old one while tokens sealed with it live, then drop it).

Wire form (base64url without padding, so it is safe in JSON, forms and URLs)::

    version (1 byte, 0x01) | key id (4 bytes) | nonce (12 bytes) | ciphertext | tag (16 bytes)

The key id is derived from the key (not its position), so adding a secret does not renumber
the others. The associated data binds a ciphertext to its *purpose* and *context* (for example
the client and the resource it was issued to) together with the version and key id: moving a
ciphertext to another purpose, client or resource makes it fail to decrypt. Nonces are random
(96 bits); SP 800-38D §8.3 bounds one key to 2^32 encryptions with random nonces, far beyond a
rotation period of an authorization server's token issuance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .sealing import MIN_SECRET_BYTES, ReasonError, secret_key_bytes

__all__ = [
    "ENCRYPTION_LABEL",
    "MAX_CIPHERTEXT_LENGTH",
    "MIN_SECRET_BYTES",
    "UPSTREAM_ACCESS_TOKEN",
    "UPSTREAM_REFRESH_TOKEN",
    "DecryptionError",
    "TokenCipher",
    "secret_key_bytes",
]

#: HKDF ``info`` for the AES-256-GCM keys; no other key of the shim uses it.
ENCRYPTION_LABEL = b"mcp-oauth-shim/v1/aead-key/A256GCM"
#: Purposes of the shim's own ciphertexts (part of the associated data).
UPSTREAM_REFRESH_TOKEN = "mcp-oauth-shim.upstream-refresh-token"
UPSTREAM_ACCESS_TOKEN = "mcp-oauth-shim.upstream-access-token"
#: Larger than any ciphertext of a real token (IdP tokens stay below 8 KiB); refused unparsed.
MAX_CIPHERTEXT_LENGTH = 16 * 1024

_VERSION = b"\x01"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEADER_BYTES = 1 + _KEY_ID_BYTES + _NONCE_BYTES


class DecryptionError(ReasonError):
    """A ciphertext that is malformed, forged, altered, for another purpose or context, or
    sealed with a key that is no longer configured. ``reason`` never contains key material
    or plaintext."""


class TokenCipher:
    """AES-256-GCM with keys derived from ``secret_keys`` (newest first encrypts, all decrypt)."""

    def __init__(self, secret_keys: Sequence[str | bytes]) -> None:
        self._keys: list[tuple[bytes, AESGCM]] = []
        self._by_id: dict[bytes, AESGCM] = {}
        for secret in dict.fromkeys(secret_key_bytes(secret_keys)):
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ENCRYPTION_LABEL).derive(secret)
            key_id = hashlib.sha256(b"key id\x00" + key).digest()[:_KEY_ID_BYTES]
            aead = AESGCM(key)
            self._keys.append((key_id, aead))
            # A (2^-32-unlikely) key id collision keeps the newer key; the older one's
            # ciphertexts then fail closed, like those of a dropped key.
            self._by_id.setdefault(key_id, aead)

    def __repr__(self) -> str:
        return f"TokenCipher(keys={len(self._keys)})"

    def encrypt(self, plaintext: str | bytes, *, purpose: str, context: Sequence[str] = ()) -> str:
        """``plaintext`` encrypted with the newest key, bound to ``purpose`` and ``context``."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else bytes(plaintext)
        key_id, aead = self._keys[0]
        header = _VERSION + key_id + os.urandom(_NONCE_BYTES)
        sealed = aead.encrypt(header[1 + _KEY_ID_BYTES :], data, _associated_data(header[: 1 + _KEY_ID_BYTES], purpose, context))
        return _b64(header + sealed)

    def decrypt(self, token: str, *, purpose: str, context: Sequence[str] = ()) -> bytes:
        """The plaintext of ``token``, or :class:`DecryptionError` (never another exception)."""
        if not isinstance(token, str) or not token or len(token) > MAX_CIPHERTEXT_LENGTH or not token.isascii():
            raise DecryptionError("malformed ciphertext")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise DecryptionError("malformed ciphertext") from None
        # Non-canonical base64 (extra bits, other alphabet), too short or another version: not something we produced.
        if _b64(raw) != token or len(raw) < _HEADER_BYTES + _TAG_BYTES or raw[:1] != _VERSION:
            raise DecryptionError("malformed ciphertext")
        aead = self._by_id.get(raw[1 : 1 + _KEY_ID_BYTES])
        if aead is None:
            raise DecryptionError("encrypted with a key that is not configured (rotated out?)")
        try:
            return aead.decrypt(
                raw[1 + _KEY_ID_BYTES : _HEADER_BYTES],
                raw[_HEADER_BYTES:],
                _associated_data(raw[: 1 + _KEY_ID_BYTES], purpose, context),
            )
        except InvalidTag:
            raise DecryptionError("altered, or for another purpose or context") from None

    def decrypt_text(self, token: str, *, purpose: str, context: Sequence[str] = ()) -> str:
        """:meth:`decrypt` for text that was given as ``str``."""
        data = self.decrypt(token, purpose=purpose, context=context)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError("the plaintext is not text") from None


def _associated_data(prefix: bytes, purpose: str, context: Sequence[str]) -> bytes:
    """Version and key id, then purpose and each context item, each length-prefixed so that no
    two different (purpose, context) lists encode alike."""
    encoded = [item.encode("utf-8") for item in (purpose, *context)]
    return prefix + b"".join(len(item).to_bytes(4, "big") + item for item in encoded)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
