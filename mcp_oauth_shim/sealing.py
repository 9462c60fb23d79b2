"""Signed blobs: everything the shim must remember travels with the request, signed.

One salt per purpose, so a value minted for one purpose (a client_id, say) is never accepted
as another (a code). Every load checks a maximum age. Keys rotate: sign with the newest, accept
any configured one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

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
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            serializer = URLSafeTimedSerializer(
                self._keys, salt=purpose, signer_kwargs={"digest_method": hashlib.sha256}
            )
            self._serializers[purpose] = serializer
        return serializer

    def seal(self, purpose: str, value: Any) -> str:
        return self._serializer(purpose).dumps(value)

    def unseal(self, purpose: str, token: str, *, max_age: int) -> Any:
        if not isinstance(token, str) or not token or len(token) > MAX_SEALED_LENGTH:
            raise SealError("malformed")
        try:
            return self._serializer(purpose).loads(token, max_age=max_age)
        except SignatureExpired:
            raise SealError("expired")
        except (BadSignature, ValueError, UnicodeError):
            raise SealError("invalid signature")


def digest(value: str) -> str:
    """A short, stable fingerprint used to bind one sealed value to another (no secrets in it)."""
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()[:18]).decode()


def random_token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)
