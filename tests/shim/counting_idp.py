"""An identity provider that counts what the shim asks it: discovery, JWKS, introspection and
revocation endpoints served in-process (``httpx.ASGITransport``, the shim's ``http_client``
hook), for the amplification and token-kind tests.

It signs access tokens and ID tokens with its published key, answers RFC 7662 introspection
from a table of known tokens (everything else is inactive), and can hold introspection answers
behind a gate so that tests can have many requests waiting on one token at the same time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_oauth_shim import OAuthShim, Upstream

SHIM_URL = "http://127.0.0.1:8000"
RESOURCE = SHIM_URL + "/mcp"
SECRET_KEY = "s" * 48
# Key generation is slow on a busy machine: one key for every IdP of the test session.
_KEY = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1", "alg": "RS256", "use": "sig"}, private=True)


class CountingIdP:
    """``requests`` counts the calls per endpoint name: discovery, jwks, introspect, revoke."""

    def __init__(self, issuer: str = "https://idp.test", *, introspection: bool = True) -> None:
        self.issuer = issuer
        self.key = _KEY
        self.requests: Counter[str] = Counter()
        self.introspected: list[str] = []
        self.revoked: list[dict[str, str]] = []
        self.active: dict[str, dict[str, Any]] = {}
        self.gate: asyncio.Event | None = None
        base = urlsplit(issuer).path.rstrip("/")
        self._base = issuer.rstrip("/")
        self._introspection = introspection
        self.app = Starlette(
            routes=[
                Route(base + "/.well-known/openid-configuration", self._discovery),
                Route(base + "/jwks", self._jwks),
                Route(base + "/introspect", self._introspect, methods=["POST"]),
                Route(base + "/revoke", self._revoke, methods=["POST"]),
            ]
        )

    # -- endpoints ------------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        self.requests["discovery"] += 1
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self._base + "/authorize",
            "token_endpoint": self._base + "/token",
            "revocation_endpoint": self._base + "/revoke",
            "jwks_uri": self._base + "/jwks",
        }
        if self._introspection:
            doc["introspection_endpoint"] = self._base + "/introspect"
        return JSONResponse(doc)

    async def _jwks(self, request: Request) -> Response:
        self.requests["jwks"] += 1
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def _introspect(self, request: Request) -> Response:
        self.requests["introspect"] += 1
        form = _form(await request.body())
        self.introspected.append(form.get("token", ""))
        if self.gate is not None:
            await self.gate.wait()
        return JSONResponse(self.active.get(form.get("token", ""), {"active": False}))

    async def _revoke(self, request: Request) -> Response:
        self.requests["revoke"] += 1
        self.revoked.append(_form(await request.body()))
        return Response(status_code=200)

    # -- tokens ---------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], *, typ: str | None = "JWT") -> str:
        """A JWT signed with the published key; ``exp``/``iat``/``iss`` filled in unless given."""
        now = int(time.time())
        payload = {"iss": self.issuer, "iat": now, "exp": now + 600, **claims}
        header: dict[str, Any] = {"alg": "RS256", "kid": self.key.kid}
        if typ is not None:
            header["typ"] = typ
        return jwt.encode(header, {k: v for k, v in payload.items() if v is not None}, self.key)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=self._base)

    def shim(self, upstream: Upstream, **options: Any) -> OAuthShim:
        """An OAuthShim in front of this IdP (reached in-process) for the MCP resource."""
        return OAuthShim(
            public_url=SHIM_URL,
            resource=RESOURCE,
            upstream=upstream,
            secret_keys=[SECRET_KEY],
            http_client=self.http(),
            **options,
        )


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode()).items()}


class RequestsIn:
    """ASGI wrapper counting the HTTP requests that have entered ``app``; opens ``gate`` once
    ``expected`` of them are in (each has then reached the verifier: nothing before it awaits)."""

    def __init__(self, app: Any, gate: asyncio.Event, expected: int) -> None:
        self.app = app
        self.gate = gate
        self.expected = expected
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.count += 1
            if self.count >= self.expected:
                # Opened on the next loop turn, after this request has reached the verifier too.
                asyncio.get_running_loop().call_soon(self.gate.set)
        await self.app(scope, receive, send)
