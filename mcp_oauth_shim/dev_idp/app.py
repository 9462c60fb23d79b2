"""HTTP side of the development IdP: discovery, JWKS, login page, and the OAuth endpoints.

Endpoint paths follow Auth0's (``/authorize``, ``/oauth/token``, ``/oauth/revoke``,
``/userinfo``, ``/.well-known/jwks.json``) so that a shim configured against this IdP is
configured the way it will be against the real one.
"""

from __future__ import annotations

import html
import logging
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import OAuth2Error
from joserfc import jwt
from joserfc.errors import JoseError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..memo import BoundedMemo
from .adapter import NO_STORE, StarletteOAuth2Request
from .server import Client, DevAuthorizationServer, Principal, requested_audience, same_text, user_info

logger = logging.getLogger("mcp_oauth_shim.dev_idp")

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")
SESSION_COOKIE = "dev_idp_session"
MAX_SESSIONS = 1024  # browser sign-ins remembered at once
WARNING = "DEVELOPMENT IdP: a fixed demo account and in-memory keys. Never use it in production."

_PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}


def _invalid_request(description: str = "Malformed request parameter.") -> Response:
    # By default for the ValueError authlib raises when an error description would echo
    # characters RFC 6749 §4.1.2.1 forbids (a quote in a redirect_uri, say): 400, not a crash.
    return JSONResponse({"error": "invalid_request", "error_description": description}, status_code=400, headers=NO_STORE)


class DevIdP:
    """An Auth0-like OpenID provider for development and tests. NOT FOR PRODUCTION.

    One static confidential client (``client_secret_post`` or ``client_secret_basic``), exact
    redirect URIs, PKCE S256 required, RS256 JWT access tokens whose ``aud`` is the requested
    RFC 8707 ``resource`` or Auth0 ``audience``, rotating refresh tokens with ``offline_access``,
    one demo account. ``auto_approve=True`` signs the demo user in without showing the login form,
    for headless runs. ``send_iss=True`` adds RFC 9207 ``iss`` to authorization responses (Auth0
    does not; oidc-provider does). ``audiences`` restricts which APIs tokens may be requested for
    (``None``: any). ``issuer`` is used byte for byte, in discovery and in every token.
    """

    def __init__(
        self,
        *,
        issuer: str = "http://127.0.0.1:9000",
        client_id: str = "mcp-oauth-shim-dev",
        client_secret: str | None = None,
        redirect_uris: Sequence[str] = ("http://127.0.0.1:8000/oauth/callback",),
        audiences: Iterable[str] | None = None,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        auto_approve: bool = False,
        send_iss: bool = False,
        username: str = DEMO_USERNAME,
        password: str = DEMO_PASSWORD,
        access_token_ttl: int = 3600,
    ) -> None:
        logger.warning(WARNING)
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("issuer must be an http(s) URL without query or fragment")
        self.issuer = issuer
        self.client_id = client_id
        # Random unless given: a demo wires it into the shim in-process and nobody needs to see it.
        self.client_secret = client_secret or secrets.token_urlsafe(32)
        self.auto_approve = auto_approve
        self.send_iss = send_iss
        self.username = username
        self._password = password
        self._base = issuer.rstrip("/")
        self._path = parts.path.rstrip("/")
        # Sign-ins are kept for this process, the oldest forgotten first: a stream of logins
        # (the dev IdP may run next to a public demo) cannot grow memory without bound.
        self._sessions: BoundedMemo[str, Principal] = BoundedMemo(MAX_SESSIONS)
        self.server = DevAuthorizationServer(
            issuer=issuer,
            client=Client(client_id, self.client_secret, tuple(redirect_uris), tuple(scopes)),
            audiences=audiences,
            access_token_ttl=access_token_ttl,
        )
        self.scopes = tuple(scopes)
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
                Route("/.well-known/jwks.json", self.jwks, methods=["GET"]),
                Route("/authorize", self.authorize, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/oauth/revoke", self.revoke, methods=["POST"]),
                Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
            ]
        )

    # -- metadata ------------------------------------------------------------------------

    @property
    def metadata(self) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §3 (and the RFC 8414 fields the shim reads)."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self._base}/authorize",
            "token_endpoint": f"{self._base}/oauth/token",
            "revocation_endpoint": f"{self._base}/oauth/revoke",
            "userinfo_endpoint": f"{self._base}/userinfo",
            "jwks_uri": f"{self._base}/.well-known/jwks.json",
            "scopes_supported": list(self.scopes),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "name", "email"],
            "authorization_response_iss_parameter_supported": self.send_iss,
        }

    @property
    def public_jwks(self) -> dict[str, Any]:
        """RFC 7517 §5: the public half of the signing keys."""
        return dict(self.server.keys.as_dict(private=False))

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(self.metadata, headers={"Access-Control-Allow-Origin": "*"})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.public_jwks, headers={"Access-Control-Allow-Origin": "*"})

    # -- authorization endpoint (RFC 6749 §4.1.1) ------------------------------------------

    async def authorize(self, request: Request) -> Response:
        user = self._sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if user is None and self.auto_approve:
            user = self._signed_in()  # headless: signed in, no cookie needed
        try:
            grant = self.server.get_consent_grant(StarletteOAuth2Request(request), end_user=user)
        except OAuth2Error as error:
            return self._with_iss(self.server.handle_error_response(None, error))
        except ValueError:
            return _invalid_request()
        if user is None:
            return self._login_page(request.url.query)
        # The code is granted for the API this request names (RFC 8707).
        principal = replace(user, audience=requested_audience(grant.request))
        response = self.server.create_authorization_response(grant.request, grant_user=principal, grant=grant)
        return self._with_iss(response)

    def _with_iss(self, response: Response) -> Response:
        """RFC 9207 §2: ``iss`` on every redirect back to the client, errors included.

        Done here rather than with authlib's IssuerParameter hook, which only sees responses
        of a successful validation.
        """
        location = response.headers.get("location")
        if self.send_iss and location:
            response.headers["location"] = add_params_to_uri(location, {"iss": self.issuer})
        return response

    # -- login ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        query = form.get("authorize_query")
        if not isinstance(query, str) or len(query) > 8192:
            return _invalid_request("Missing authorize_query.")
        if not (same_text(username, self.username) and same_text(password, self._password)):
            return self._login_page(query, error="Wrong username or password.", status_code=401)
        # Back to the authorization endpoint, which now finds the session and issues the code.
        response = RedirectResponse(f"{self._path}/authorize?{query}", status_code=303, headers=NO_STORE)
        session_id = secrets.token_urlsafe(32)
        self._sessions.put(session_id, self._signed_in())
        response.set_cookie(SESSION_COOKIE, session_id, path=self._path or "/", httponly=True, samesite="lax",
                            secure=self.issuer.startswith("https:"))
        return response

    def _signed_in(self) -> Principal:
        """The demo user, signed in now; the audience comes with each authorization request."""
        return Principal(self.username, audience=None, auth_time=int(time.time()))

    def _login_page(self, query: str, error: str | None = None, status_code: int = 200) -> Response:
        e = html.escape
        message = f'<p class="error">{e(error)}</p>' if error else ""
        body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Development IdP - sign in</title>
<style>body{{font-family:sans-serif;max-width:32em;margin:2em auto}}
.banner{{background:#b00020;color:#fff;padding:1em;font-weight:bold}}.error{{color:#b00020}}</style></head>
<body><div class="banner">{e(WARNING)}</div>
<h1>Sign in</h1>
<p>Demo account: <code>{e(self.username)}</code> / <code>{e(self._password)}</code></p>{message}
<form method="post" action="{e(self._path)}/login">
<input type="hidden" name="authorize_query" value="{e(query)}">
<label>Username <input name="username" value="{e(self.username)}" autocomplete="username"></label><br>
<label>Password <input name="password" type="password" value="{e(self._password)}"></label><br>
<button type="submit" name="action" value="login">Sign in</button>
</form></body></html>"""
        return HTMLResponse(body, status_code=status_code, headers=_PAGE_HEADERS)

    # -- token, revocation, userinfo -------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """RFC 6749 §3.2: authorization_code (RFC 7636 verifier checked) and refresh_token."""
        try:
            return self.server.create_token_response(StarletteOAuth2Request(request, await request.form()))
        except ValueError:
            return _invalid_request()

    async def revoke(self, request: Request) -> Response:
        """RFC 7009 §2."""
        try:
            oauth_request = StarletteOAuth2Request(request, await request.form())
            return self.server.create_endpoint_response("revocation", oauth_request)
        except ValueError:
            return _invalid_request()

    async def userinfo(self, request: Request) -> Response:
        """OpenID Connect Core §5.3, for any valid access token this IdP issued."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise JoseError("no bearer token")
            claims = jwt.decode(token, self.server.keys, algorithms=["RS256"]).claims
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer}, exp={"essential": True}, sub={"essential": True}
            ).validate(claims)
            scope = claims.get("scope", "")
            if not isinstance(claims["sub"], str) or not isinstance(scope, str):
                raise ValueError("sub and scope must be strings")
        except (JoseError, ValueError):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return JSONResponse(dict(user_info(claims["sub"], scope)), headers=NO_STORE)

    # -- serving -------------------------------------------------------------------------

    def uvicorn_server(self, host: str = "127.0.0.1", port: int = 9000) -> uvicorn.Server:
        """A uvicorn server for this IdP; it listens on ``host`` only (loopback by default)."""
        return uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off"))

    async def serve(self, host: str = "127.0.0.1", port: int = 9000, sock: socket.socket | None = None) -> None:
        """Serve until cancelled; pass ``sock`` to use a socket bound beforehand (port 0 in tests)."""
        server = self.uvicorn_server(host, port)
        await server.serve(sockets=[sock] if sock else None)
