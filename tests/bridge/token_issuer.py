"""A signing key, its OIDC discovery document and JWKS - enough for the shim's real verifier.

The bridge's auth tests need access tokens with chosen scopes, audiences, issuers and
lifetimes. The full login flow is covered with the real IdP in tests/integration; here the
IdP's two read-only documents are served in-process (through `httpx.ASGITransport`, the
shim's `http_client` hook) and tokens are RS256 JWTs (RFC 9068 shape) signed with the key.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_oauth_shim import OAuthShim, Upstream

ISSUER = "https://idp.test"


class TokenIssuer:
    def __init__(self, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
            ]
        )

    async def _discovery(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> JSONResponse:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    def token(
        self,
        *,
        audience: str,
        scopes: tuple[str, ...] = (),
        subject: str = "user-1",
        issuer: str | None = None,
        lifetime: int = 600,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience,
            "client_id": "upstream-client",
            "iat": now,
            "exp": now + lifetime,
            "scope": " ".join(scopes),
            **(extra_claims or {}),
        }
        return jwt.encode({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, claims, self.key)

    def shim(self, public_url: str, **options: Any) -> OAuthShim:
        """An OAuthShim whose upstream is this issuer, reached in-process."""
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=self.issuer)
        upstream = Upstream.oidc(
            issuer=self.issuer,
            client_id="upstream-client",
            client_secret="upstream-secret",
            audience=public_url + "/mcp",
        )
        options.setdefault("secret_keys", ["a-test-key-that-is-long-enough-for-signing-things-0123456789"])
        return OAuthShim(public_url=public_url, upstream=upstream, http_client=http, **options)
