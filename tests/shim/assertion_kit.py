"""Signing helpers for the JWT assertion tests: real keys (joserfc), raw JWS assembly for the
malformed and hostile shapes no library would produce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

NOW = 1_800_000_000
AS_ISSUER = "https://auth.example.com"
TOKEN_ENDPOINT = "https://auth.example.com/oauth/token"
RESOURCE = "https://api.example.com/mcp"

EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
OTHER_EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})  # same kid, other key
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})


def jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def sign(claims: Any, header: dict[str, Any] | None = None, key: Any = EC_KEY) -> str:
    """A JWS signed with ``key`` (ES256 for EC, RS256 for RSA) over arbitrary JSON claims."""
    alg = "ES256" if isinstance(key, ECKey) else "RS256"
    full = {"alg": alg, "kid": key.kid, **(header or {})}
    full = {k: v for k, v in full.items() if v is not ...}
    payload = json.dumps(claims).encode()
    return jws.serialize_compact(full, payload, key, algorithms=[full["alg"]])


def forge(header: dict[str, Any], claims: Any) -> str:
    """A JWS with any header and a signature that verifies under no key."""
    return f"{b64json(header)}.{b64json(claims)}.{b64(b'not a signature')}"


def hs256_with_public_key(claims: dict[str, Any], key: Any = RSA_KEY) -> str:
    """The algorithm-confusion attack: HMAC-SHA256 keyed with the published public key."""
    secret = key.as_pem(private=False)
    signing_input = f"{b64json({'alg': 'HS256', 'kid': key.kid})}.{b64json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unsigned(claims: dict[str, Any]) -> str:
    return f"{b64json({'alg': 'none'})}.{b64json(claims)}."


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "client-1",
        "sub": "client-1",
        "aud": AS_ISSUER,
        "exp": NOW + 60,
        "iat": NOW,
        "jti": "jti-1",
    }
    for name, value in overrides.items():
        if value is ...:
            base.pop(name, None)
        else:
            base[name] = value
    return base
