"""An enterprise IdP stand-in that issues ID-JAGs (MCP enterprise-managed authorization §4).

What is real:
- the keys and signatures: an EC P-256 key (joserfc), ES256 JWS in compact serialization,
  the ID-JAG's ``typ: oauth-id-jag+jwt`` header and the §4.3 claims exactly as the spec lists
  them (iss, sub, aud, resource, client_id, jti, exp, iat, scope);
- the discovery document (``/.well-known/openid-configuration``) and the JWK Set at
  ``jwks_uri``, served over real HTTP on loopback (uvicorn), so the shim's key fetching,
  caching and rotation run against a real server;
- the RFC 8693 token exchange request and response shapes of §4 and §4.2 (``grant_type``
  token-exchange, ``requested_token_type`` id-jag, ``audience``, ``resource``, ``scope``,
  ``subject_token`` of type id_token; ``issued_token_type``, ``token_type: N_A``).

What is a stand-in:
- there is no user login: :meth:`IdJagIssuer.id_token` signs an ID token for any subject, as
  if the user had just signed in to the MCP client via OpenID Connect (§3);
- the policy evaluation of §4.1 is a fixed table: ``policy[client_id]`` lists the scopes the
  client may get; everything else is refused with ``invalid_grant`` (no groups, no step-up).
No real IdP test peer offers RFC 8693 with the id-jag token type (oidc-provider has no token
exchange), which is why this exists. :meth:`IdJagIssuer.sign` signs any header and claims, so
tests can also make the broken and hostile ID-JAGs a faulty or malicious IdP would.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.peers.servers import bind_loopback, serve_asgi

ID_JAG_TYP = "oauth-id-jag+jwt"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


class IdJagIssuer:
    """Signs ID tokens and ID-JAGs as ``issuer``; :meth:`app` serves its metadata, keys and
    token exchange."""

    def __init__(
        self,
        issuer: str,
        *,
        clients: Mapping[str, str] | None = None,
        policy: Mapping[str, tuple[str, ...]] | None = None,
        lifetime: int = 300,
    ) -> None:
        self.issuer = issuer
        self.key = ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(4), "use": "sig", "alg": "ES256"})
        self.clients = dict(clients or {})  # client_id -> client_secret at this IdP
        self.policy = dict(policy or {})  # client_id -> scopes it may get
        self.lifetime = lifetime
        self.jwks_requests = 0

    # -- signing ---------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    def rotate(self) -> None:
        """A new signing key (new kid); the old one is no longer published."""
        self.key = ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(4), "use": "sig", "alg": "ES256"})

    def sign(self, header: Mapping[str, Any], claims: Mapping[str, Any], key: ECKey | None = None) -> str:
        signer = key or self.key
        full_header = {"alg": "ES256", "kid": signer.kid, **header}
        # jws, not jwt.encode: the header is exactly what the caller gave (jwt.encode adds typ).
        return jws.serialize_compact(full_header, json.dumps(dict(claims)).encode(), signer, algorithms=["ES256"])

    def id_token(self, subject: str, client_id: str) -> str:
        now = int(time.time())
        return self.sign(
            {"typ": "JWT"},
            {"iss": self.issuer, "sub": subject, "aud": client_id, "iat": now, "exp": now + 300},
        )

    def id_jag_claims(
        self, *, subject: str, client_id: str, audience: str, resource: str, scope: str | None = None, lifetime: int | None = None
    ) -> dict[str, Any]:
        """The §4.3 claim set."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "resource": resource,
            "client_id": client_id,
            "exp": now + (self.lifetime if lifetime is None else lifetime),
            "iat": now,
        }
        if scope is not None:
            claims["scope"] = scope
        return claims

    def id_jag(self, **kwargs: Any) -> str:
        return self.sign({"typ": ID_JAG_TYP}, self.id_jag_claims(**kwargs))

    # -- HTTP ------------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def metadata(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "jwks_uri": f"{self.issuer}/jwks",
                    "token_endpoint": f"{self.issuer}/token",
                    "grant_types_supported": ["authorization_code", TOKEN_EXCHANGE],
                }
            )

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_requests += 1
            return JSONResponse(self.jwks())

        async def token(request: Request) -> JSONResponse:
            form = await request.form()
            return self._token_exchange({k: str(v) for k, v in form.items()})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", metadata),
                Route("/jwks", jwks),
                Route("/token", token, methods=["POST"]),
            ]
        )

    def _token_exchange(self, form: dict[str, str]) -> JSONResponse:
        def refuse(error: str, description: str) -> JSONResponse:
            return JSONResponse({"error": error, "error_description": description}, status_code=400)

        client_id = form.get("client_id", "")
        if self.clients.get(client_id) is None or not secrets.compare_digest(self.clients[client_id], form.get("client_secret", "")):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != TOKEN_EXCHANGE:
            return refuse("unsupported_grant_type", "only token exchange here")
        if form.get("requested_token_type") != ID_JAG_TOKEN_TYPE or form.get("subject_token_type") != ID_TOKEN_TYPE:
            return refuse("invalid_request", "requested_token_type must be id-jag, subject_token_type id_token")
        audience, resource = form.get("audience"), form.get("resource")
        if not audience or not resource:
            return refuse("invalid_request", "audience and resource are required")
        try:
            id_token = jwt.decode(form.get("subject_token", ""), self.key)
        except Exception:  # the stand-in's ID token check: any failure is a refusal
            return refuse("invalid_grant", "subject_token is not an ID token of this IdP")
        # §4.1: the ID token's audience must be the client making the exchange.
        if id_token.claims.get("aud") != client_id or id_token.claims.get("iss") != self.issuer:
            return refuse("invalid_grant", "Audience validation failed")
        allowed = self.policy.get(client_id)
        if allowed is None:
            return refuse("invalid_grant", "policy: this client may not access that MCP server")
        requested = form.get("scope", "").split()
        granted = [s for s in requested if s in allowed] if requested else list(allowed)
        scope = " ".join(granted)
        assertion = self.id_jag(
            subject=id_token.claims["sub"], client_id=client_id, audience=audience, resource=resource, scope=scope
        )
        body: dict[str, Any] = {
            "issued_token_type": ID_JAG_TOKEN_TYPE,
            "access_token": assertion,
            "token_type": "N_A",
            "expires_in": self.lifetime,
        }
        if granted != requested:
            body["scope"] = scope
        return JSONResponse(body, headers={"Cache-Control": "no-store"})


@contextmanager
def running_id_jag_issuer(**kwargs: Any) -> Iterator[IdJagIssuer]:
    """An :class:`IdJagIssuer` served on loopback; its issuer is its URL."""
    sock = bind_loopback()
    host, port = sock.getsockname()[:2]
    issuer = IdJagIssuer(f"http://{host}:{port}", **kwargs)
    with serve_asgi(issuer.app(), sock):
        yield issuer
