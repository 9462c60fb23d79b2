"""Signed blobs: everything the shim must remember travels with the request, signed.

One salt per purpose, so a value minted for one purpose (a client_id, say) is never accepted
as another (a code). Every load checks a maximum age. Keys rotate: sign with the newest, accept
any configured one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from .config import ConfigurationError

CLIENT = "mcp-oauth-shim.client-id"
CONSENT = "mcp-oauth-shim.consent"
STATE = "mcp-oauth-shim.upstream-state"
CODE = "mcp-oauth-shim.code"
REFRESH = "mcp-oauth-shim.refresh-token"

# What a signed value may be at most when it comes back to us: more is an attack on the parser.
MAX_SEALED_LENGTH = 8192


class SealError(Exception):
    """A signed value that is forged, corrupted, expired or meant for another purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CompactJSON:
    """Base64url JSON, uncompressed: the values are small and zlib costs more than it saves."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        return base64_encode(json.dumps(value, separators=(",", ":")).encode())

    @staticmethod
    def loads(payload: bytes | str) -> Any:
        return json.loads(base64_decode(payload))


class Sealer:
    """Signs and verifies JSON values for each purpose with rotating keys."""

    def __init__(self, secret_keys: Sequence[str | bytes]) -> None:
        keys = [k.encode() if isinstance(k, str) else bytes(k) for k in secret_keys]
        if not keys:
            raise ConfigurationError("secret_keys needs at least one key (newest first).")
        for key in keys:
            if len(key) < 32:
                raise ConfigurationError(
                    "Each secret key needs at least 32 bytes; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
                )
        # itsdangerous signs with the LAST key and verifies with all; our API is newest first.
        self._keys = list(reversed(keys))
        self._serializers: dict[str, TimedSerializer[bytes]] = {}

    def _serializer(self, purpose: str) -> TimedSerializer[bytes]:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            serializer = TimedSerializer(
                self._keys, salt=purpose, serializer=_CompactJSON, signer_kwargs={"digest_method": hashlib.sha256}
            )
            self._serializers[purpose] = serializer
        return serializer

    def seal(self, purpose: str, value: Any) -> str:
        # payload.timestamp.signature, all base64url: safe in URLs, forms and cookies as is.
        return self._serializer(purpose).dumps(value).decode("ascii")

    def unseal(self, purpose: str, token: str, *, max_age: int) -> Any:
        return self.unseal_timed(purpose, token, max_age=max_age)[0]

    def unseal_timed(self, purpose: str, token: str, *, max_age: int) -> tuple[Any, float]:
        """The value and when it was sealed (a POSIX timestamp)."""
        if not isinstance(token, str) or not token or len(token) > MAX_SEALED_LENGTH:
            raise SealError("malformed")
        try:
            value, signed_at = self._serializer(purpose).loads(token, max_age=max_age, return_timestamp=True)
            return value, signed_at.timestamp()
        except SignatureExpired:
            raise SealError("expired")
        except (BadSignature, ValueError, UnicodeError):
            raise SealError("invalid signature")


def digest(value: str) -> str:
    """A short, stable fingerprint used to bind one sealed value to another (no secrets in it)."""
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()[:18]).decode()


def random_token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)
