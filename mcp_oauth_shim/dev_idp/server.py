"""The OAuth core of the development IdP: authlib's authorization server, grants and models.

:mod:`.adapter` carries requests and responses between it and Starlette, and :mod:`.app` adds
the pages. Storage is a few in-memory dicts: restarting the IdP forgets every code and refresh token.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo
from joserfc.jwk import KeySet, RSAKey
from starlette.responses import Response

from .adapter import to_response

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource (or Auth0-style audience) is not one this IdP serves."""

    error = "invalid_target"


def same_text(given: object, expected: str) -> bool:
    """Whether ``given`` is the string ``expected``, compared in constant time (no timing oracle
    on client credentials or the demo password)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Principal:
    """Who a code or refresh token speaks for, and for which API it was granted.

    authlib hands the "user" of a grant to the token generator; carrying the granted audience
    (RFC 8707 resource) on it is how the JWT's ``aud`` follows the authorization request.
    """

    username: str
    audience: str | None
    auth_time: int

    def get_user_id(self) -> str:
        return self.username


@dataclass(frozen=True)
class Client(ClientMixin):
    """The one static confidential client, registered out of band like at Auth0."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 §3.1.2.3: with several registered URIs the client must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Like Auth0: unknown scopes are dropped silently, no scope at all means "openid".
        allowed = [s for s in (scope or "").split() if s in self.scopes]
        return " ".join(dict.fromkeys(allowed)) or "openid"

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 6749 §3.1.2.3 / OAuth 2.1: simple string comparison, no prefix or pattern match.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return same_text(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    """A code waiting for its token request; no ``acr`` (the mixin's default)."""

    code: str
    client_id: str
    redirect_uri: str | None  # only when the request named one (RFC 6749 §4.1.3)
    scope: str
    principal: Principal
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    expires_at: float

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.principal.auth_time

    def get_amr(self) -> list[str]:
        return ["pwd"]


@dataclass
class RefreshToken:
    token: str
    client_id: str
    scope: str
    principal: Principal
    expires_at: float

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass
class Store:
    """All state of the IdP. Single process, no persistence: a development tool."""

    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)


def requested_audience(request: OAuth2Request) -> str | None:
    """The API the client asks a token for: RFC 8707 ``resource``, else Auth0's ``audience``."""
    data = request.payload.datalist
    values = [*data.get("resource", []), *data.get("audience", [])]
    if len(set(values)) > 1:
        raise InvalidTargetError("Only one resource (or audience) per request is supported.")
    return values[0] if values else None


class S256CodeChallenge(CodeChallenge):
    """RFC 7636 with the OAuth 2.1 rules: a challenge is mandatory and only ``S256`` is accepted."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """RFC 6749 §4.1 with RFC 8707 audience binding; codes live 60 s and are single-use."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: DevAuthorizationServer

    def validate_authorization_request(self) -> str:
        redirect_uri = super().validate_authorization_request()
        try:
            self.server.check_audience(requested_audience(self.request))
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        now = time.time()
        codes = self.server.store.codes
        for stale in [c for c, item in codes.items() if item.expires_at <= now]:
            del codes[stale]  # abandoned logins must not pile up in memory
        codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            principal=request.user,
            code_challenge=data["code_challenge"],
            code_challenge_method=data.get("code_challenge_method", "S256"),
            nonce=data.get("nonce"),
            expires_at=now + 60,
        )

    def query_authorization_code(self, code: str, client: ClientMixin) -> AuthorizationCode | None:
        item = self.server.store.codes.get(code)
        if item and item.client_id == client.get_client_id() and time.time() < item.expires_at:
            return item
        return None

    def validate_token_request(self) -> None:
        super().validate_token_request()
        # RFC 8707 §2.2: a resource at the token endpoint must be one that was granted.
        self.server.check_same_audience(self.request, self.request.authorization_code.principal)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.server.store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Principal:
        return authorization_code.principal


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation (OAuth 2.1 §4.3.1): every use returns a new refresh token
    and the presented one stops working."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: DevAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        item = self.server.store.refresh_tokens.get(refresh_token)
        return item if item and not item.is_expired() else None

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self.server.check_same_audience(self.request, self.request.refresh_token.principal)

    def authenticate_user(self, refresh_token: RefreshToken) -> Principal:
        return refresh_token.principal

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        self.server.store.refresh_tokens.pop(refresh_token.token, None)


class Revocation(RevocationEndpoint):
    """RFC 7009 for refresh tokens. Access tokens are self-contained JWTs: revoking one is
    accepted (RFC 7009 §2.2 answers 200 for unknown tokens) but it stays valid until ``exp``."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: DevAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> RefreshToken | None:
        return self.server.store.refresh_tokens.get(token_string)

    def revoke_token(self, token: RefreshToken, request: OAuth2Request) -> None:
        self.server.store.refresh_tokens.pop(token.token, None)


class IdTokens(OpenIDCode):
    """OpenID Connect Core §3.1.3.6: an ID token next to the access token when ``openid`` is granted."""

    def __init__(self, server: DevAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        # Read-only on purpose: authlib validates an authorization request twice (consent,
        # then response), so remembering the nonce here would flag the second pass as a replay.
        client_id = request.payload.client_id
        return any(c.nonce == nonce and c.client_id == client_id for c in self.server.store.codes.values())

    def resolve_client_private_key(self, client: ClientMixin) -> KeySet:
        return self.server.keys

    def get_client_algorithm(self, client: ClientMixin) -> str:
        return "RS256"

    def get_client_claims(self, client: ClientMixin) -> dict[str, Any]:
        return {"iss": self.server.issuer, "aud": [client.get_client_id()], "exp": int(time.time()) + 3600}

    def generate_user_info(self, user: Principal, scope: str) -> UserInfo:
        return user_info(user.username, scope)


def user_info(username: str, scope: str) -> UserInfo:
    """OpenID Connect Core §5.4: the demo account's claims, released per scope."""
    scopes = scope.split()
    info = UserInfo(sub=username)
    if "profile" in scopes:
        info["name"] = "Demo User"
    if "email" in scopes:
        info["email"] = f"{username}@example.test"
        info["email_verified"] = True
    return info


class AccessTokens(JWTBearerTokenGenerator):
    """RFC 9068 JWT access tokens signed RS256, ``aud`` = the granted resource/audience.

    Refresh tokens are issued only with the ``offline_access`` scope, as Auth0 and most OIDC
    providers do (OpenID Connect Core §11).
    """

    def __init__(self, server: DevAuthorizationServer, access_token_ttl: int) -> None:
        super().__init__(
            issuer=server.issuer,
            alg="RS256",
            refresh_token_generator=lambda **_: secrets.token_urlsafe(32),
            expires_generator=access_token_ttl,
        )
        self.server = server

    def get_jwks(self) -> KeySet:
        return self.server.keys

    def get_audiences(self, client: ClientMixin, user: Principal | None, scope: str) -> str:
        # Without a resource/audience the token is for the client itself, as Auth0 does with
        # its userinfo-only tokens; a resource server must then refuse it.
        return (user.audience if user else None) or client.get_client_id()

    def get_auth_time(self, user: Principal | None) -> int | None:
        return user.auth_time if user else None

    def generate(self, grant_type: str, client: ClientMixin, user: Any = None, scope: str | None = None,
                 expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        granted = self.get_allowed_scope(client, scope)
        include_refresh_token = include_refresh_token and "offline_access" in granted.split()
        return super().generate(grant_type, client, user, granted, expires_in, include_refresh_token)


class DevAuthorizationServer(AuthorizationServer):
    """authlib's authorization server over :class:`Store`; its answers become Starlette
    responses through :func:`.adapter.to_response`."""

    def __init__(self, *, issuer: str, client: Client, audiences: Iterable[str] | None,
                 access_token_ttl: int = 3600, refresh_token_ttl: int = 30 * 24 * 3600) -> None:
        super().__init__(scopes_supported=None)  # unknown scopes are dropped, not refused
        self.issuer = issuer
        self.client = client
        self.audiences = None if audiences is None else frozenset(audiences)
        self.store = Store()
        self.keys = KeySet([RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"},
                                                private=True, auto_kid=True)])
        self.refresh_token_ttl = refresh_token_ttl
        self.register_token_generator("default", AccessTokens(self, access_token_ttl))
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), IdTokens(self)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(Revocation)

    # -- authlib hooks -------------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        return self.client if same_text(client_id, self.client.client_id) else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if "refresh_token" in token:
            # RFC 6749 §6: a new refresh token has the scope of the one presented; a refresh
            # that asks for less narrows its access token only (authlib would narrow both).
            presented = getattr(request, "refresh_token", None)
            self.store.refresh_tokens[token["refresh_token"]] = RefreshToken(
                token=token["refresh_token"],
                client_id=request.client.get_client_id(),
                scope=presented.scope if isinstance(presented, RefreshToken) else token["scope"],
                principal=request.user,
                expires_at=time.time() + self.refresh_token_ttl,
            )

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        # The HTTP side hands every endpoint a finished request (it reads the form first).
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        return to_response(status, body, headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass  # no signal bus: nothing listens

    # -- RFC 8707 ------------------------------------------------------------------------

    def check_audience(self, audience: str | None) -> None:
        """Auth0 refuses an audience that is not a registered API; so do we when a list is set."""
        if audience is not None and self.audiences is not None and audience not in self.audiences:
            raise InvalidTargetError("The requested resource is not an API known to this IdP.")

    def check_same_audience(self, request: OAuth2Request, principal: Principal) -> None:
        audience = requested_audience(request)
        if audience is not None and audience != principal.audience:
            raise InvalidTargetError("The resource differs from the one that was granted.")
