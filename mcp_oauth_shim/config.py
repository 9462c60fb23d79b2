"""Configuration values: the upstream identity provider, its access tokens, the lifetimes of
what the shim signs and the paths it serves.

An IdP preset is a value, not a subclass: ``Upstream.oidc(...)`` (and the presets that build on
it) return a frozen :class:`Upstream` that the rest of the shim reads. Every value checks
itself when it is made (``__post_init__``), so a preset, ``Upstream.oidc``, an ``Upstream``
built from custom metadata and a ``replace()``-d copy all meet the same rules.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack, get_args

from .urls import is_loopback_host, service_url_problem

__all__ = [
    "AccessTokenProfile",
    "ConfigurationError",
    "Lifetimes",
    "Paths",
    "Upstream",
    "is_loopback_host",
]

AudienceParam = Literal["resource", "audience", "none"]
AUDIENCE_PARAMS: tuple[AudienceParam, ...] = get_args(AudienceParam)
TokenAuthMethod = Literal["client_secret_post", "client_secret_basic"]
TOKEN_AUTH_METHODS: tuple[TokenAuthMethod, ...] = get_args(TokenAuthMethod)
#: Where issued-token mode learns who signed in (see :attr:`Upstream.identity`).
IdentitySource = Literal["id_token", "userinfo", "github"]
IDENTITY_SOURCES: tuple[IdentitySource, ...] = get_args(IdentitySource)
# The fields of an Upstream that hold a URL of the IdP: each follows the service URL policy.
URL_FIELDS = (
    "issuer", "metadata_url", "authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri",
    "userinfo_endpoint", "user_api",
)

# Parameters the shim itself sets on the upstream authorization request. An operator's
# extra_authorize_params may not override them: they carry the security of the flow.
RESERVED_AUTHORIZE_PARAMS = frozenset(
    {
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
        "code_challenge",
        "code_challenge_method",
        "scope",
        "resource",
        "audience",
        "request",
        "request_uri",
        "response_mode",
        "nonce",
    }
)


# Scopes the IdP defines itself (OpenID Connect Core §5.4, §11); never prefixed.
OPENID_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


class ConfigurationError(ValueError):
    """The shim was configured in a way that cannot work; the message says what to change."""


@dataclass(frozen=True)
class Lifetimes:
    """How long each signed value is honoured, in seconds."""

    client_id: int = 365 * 24 * 3600
    consent: int = 600
    state: int = 600
    code: int = 300
    refresh_token: int = 90 * 24 * 3600
    # Issued-token mode: the lifetime of the shim's own access tokens (RFC 6749 §5.1 expires_in).
    access_token: int = 3600


@dataclass(frozen=True)
class Paths:
    """Endpoint paths relative to the public URL."""

    register: str = "/oauth/register"
    authorize: str = "/oauth/authorize"
    consent: str = "/oauth/consent"
    callback: str = "/oauth/callback"
    token: str = "/oauth/token"
    revoke: str = "/oauth/revoke"
    # Issued-token mode: the shim's public signing keys (RFC 7517 JWK Set).
    jwks: str = "/oauth/jwks"
    #: Health probes (:mod:`mcp_oauth_shim.health`): served by ``shim.app`` and ``serve``, and by
    #: ``shim.health_routes`` wherever they are mounted; not part of ``shim.routes``, so they
    #: never shadow an application's own health check.
    liveness: str = "/healthz"
    readiness: str = "/readyz"


#: Claims only ID tokens carry (OpenID Connect Core §2, §3.3.2.11): the request ``nonce`` and the
#: hashes binding an ID token to the access token, code or state it came with.
ID_TOKEN_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "s_hash"})


@dataclass(frozen=True)
class AccessTokenProfile:
    """What the IdP's JWT access tokens look like, so that no other JWT it signs passes for one.

    An IdP signs its ID tokens (OpenID Connect Core §2) with the same keys as its access tokens,
    and some give both the same ``aud`` (Entra ID v2: the client ID). RFC 9068 §2.1 and
    RFC 8725 §3.11 tell them apart by the ``typ`` header (``at+jwt``), but only some IdPs follow
    RFC 9068; the others differ in their claims. Each preset carries the profile of its IdP.

    ``header_types``: the accepted ``typ`` header values, lower-cased without ``application/``
    (RFC 7515 §4.1.9); ``""`` stands for no ``typ`` at all.
    ``type_claim`` / ``type_claim_values``: a claim that must be present with one of these
    values (Keycloak writes ``"typ": "Bearer"`` into access tokens and ``"ID"`` into ID tokens).
    ``id_token_claims``: claims whose presence marks an ID token.
    ``scope_claims``: where the token's scopes are, merged in this order (strings are
    space-separated lists). ``app_permission_claims``: where an application (client
    credentials) token's permissions are; read only when no ``scope_claims`` claim is present
    and ``idtyp`` does not say ``user`` (Entra ID ``roles``: in a user's token they are that
    user's roles, not permissions granted to the client).
    ``client_claims``: the claims naming the client the token was issued to, first found wins;
    ``require_client_claim``: refuse a token that has none of them.
    ``client_audience_needs_scopes``: a token whose ``aud`` is the upstream client ID (what ID
    tokens carry) is refused unless it grants scopes or permissions.
    ``opaque_tokens``: whether tokens that are not JWTs may be valid at all; ``False`` refuses
    them without asking the IdP's introspection endpoint (no IdP call for a random string).
    """

    name: str = "oidc"
    header_types: frozenset[str] = frozenset({"", "jwt", "at+jwt"})
    type_claim: str | None = None
    type_claim_values: frozenset[str] = frozenset()
    id_token_claims: frozenset[str] = ID_TOKEN_CLAIMS
    scope_claims: tuple[str, ...] = ("scope", "scp", "permissions")
    app_permission_claims: tuple[str, ...] = ()
    client_claims: tuple[str, ...] = ("azp", "client_id")
    require_client_claim: bool = False
    client_audience_needs_scopes: bool = True
    opaque_tokens: bool = True

    def __post_init__(self) -> None:
        for value in self.header_types:
            if value != value.lower() or value.startswith("application/"):
                raise ConfigurationError(
                    f"AccessTokenProfile.header_types holds {value!r}: write it lower-case without 'application/'."
                )
        if not self.header_types:
            raise ConfigurationError("AccessTokenProfile.header_types must accept at least one typ value.")
        if self.type_claim is not None and not self.type_claim_values:
            raise ConfigurationError("AccessTokenProfile.type_claim needs type_claim_values.")
        if self.require_client_claim and not self.client_claims:
            raise ConfigurationError("AccessTokenProfile.require_client_claim needs client_claims.")

    # -- the profiles of the presets: values ----------------------------------------------------

    @classmethod
    def rfc9068(cls, **changes: object) -> AccessTokenProfile:
        """RFC 9068 §4: ``typ`` must be ``at+jwt`` (oidc-provider, authlib, Auth0's RFC 9068
        token dialect, the shim's development IdP). The strictest choice; use it when your IdP
        follows RFC 9068."""
        fields: dict[str, object] = {"name": "rfc9068", "header_types": frozenset({"at+jwt"}), **changes}
        return dataclasses.replace(OIDC_ACCESS_TOKENS, **fields)  # type: ignore[arg-type]


#: Any OpenID Connect provider: ``typ`` absent, ``JWT`` or ``at+jwt``; ID-token claims refused;
#: scopes from ``scope``, ``scp`` and ``permissions``; opaque tokens introspected when the IdP can.
OIDC_ACCESS_TOKENS = AccessTokenProfile()

#: Auth0: ``typ: JWT`` (``at+jwt`` with the RFC 9068 token dialect), ``scope`` and, with RBAC,
#: ``permissions``; ``azp`` (``client_id`` in the RFC 9068 dialect). Tokens for an API are always
#: JWTs and Auth0 has no introspection, so opaque tokens are refused without an IdP call.
AUTH0_ACCESS_TOKENS = AccessTokenProfile(
    name="auth0", scope_claims=("scope", "permissions"), opaque_tokens=False
)

#: Keycloak: ``typ: JWT`` header and a ``typ`` claim: ``Bearer`` in access tokens, ``ID`` in ID
#: tokens, ``Refresh``/``Offline`` in refresh tokens. ``nonce`` is not used as a sign: older
#: Keycloak versions copy the authorization request's nonce into access tokens too. Access
#: tokens are always JWTs, so random strings never reach the introspection endpoint.
KEYCLOAK_ACCESS_TOKENS = AccessTokenProfile(
    name="keycloak",
    type_claim="typ",
    type_claim_values=frozenset({"Bearer"}),
    id_token_claims=frozenset({"at_hash", "c_hash", "s_hash"}),
    scope_claims=("scope",),
    opaque_tokens=False,
)

#: Okta (custom authorization server): scopes in ``scp`` (a list), the client in ``cid``; access
#: tokens are always JWTs.
OKTA_ACCESS_TOKENS = AccessTokenProfile(
    name="okta", scope_claims=("scp",), client_claims=("cid",), opaque_tokens=False
)

#: Entra ID v2: ``typ: JWT`` on ID and access tokens alike, and ``aud`` = the client ID on both.
#: Delegated tokens carry ``scp`` (space-separated); application tokens carry ``roles`` (the app
#: permissions granted to the client) and no ``scp``. Every v2 access token names its client in
#: ``azp`` (``appid`` in v1); ID tokens do not. ``tid`` and ``ver`` are pinned by the issuer
#: (``https://login.microsoftonline.com/<tenant>/v2.0``), which is checked exactly.
ENTRA_ACCESS_TOKENS = AccessTokenProfile(
    name="entra",
    scope_claims=("scp",),
    app_permission_claims=("roles",),
    client_claims=("azp", "appid"),
    require_client_claim=True,
    opaque_tokens=False,
)


class UpstreamOptions(TypedDict, total=False):
    """The optional settings of :meth:`Upstream.oidc`: the :class:`Upstream` fields of the same
    names, with their defaults; scopes may also be given as lists."""

    issuer: str | None
    metadata_url: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None
    revocation_endpoint: str | None
    jwks_uri: str | None
    audience: str | None
    audience_param: AudienceParam
    default_scopes: tuple[str, ...] | list[str]
    extra_scopes: tuple[str, ...] | list[str]
    extra_authorize_params: Mapping[str, str] | None
    token_auth_method: TokenAuthMethod
    timeout: float
    name: str
    scope_prefix: str
    access_tokens: AccessTokenProfile
    issue_tokens: bool | None
    identity: IdentitySource
    userinfo_endpoint: str | None
    user_api: str | None
    granted_scope_delimiter: str


@dataclass(frozen=True)
class Upstream:
    """The identity provider behind the shim: one static confidential client.

    Build it with :meth:`Upstream.oidc` (or a preset). Endpoints left as ``None`` are
    discovered from ``metadata_url`` (derived from ``issuer`` when not given).
    """

    client_id: str
    client_secret: str = field(repr=False)
    issuer: str | None = None
    metadata_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    revocation_endpoint: str | None = None
    jwks_uri: str | None = None
    audience: str | None = None
    audience_param: AudienceParam = "resource"
    default_scopes: tuple[str, ...] = ("openid",)
    extra_scopes: tuple[str, ...] = ()
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    token_auth_method: TokenAuthMethod = "client_secret_post"
    timeout: float = 10.0
    name: str = "oidc"
    scope_prefix: str = ""
    access_tokens: AccessTokenProfile = OIDC_ACCESS_TOKENS
    # -- issued-token mode: whether the shim mints its own access tokens, and how it learns
    # who signed in. ``issue_tokens``: what this IdP needs (``None``: no preference, which
    # means passthrough); ``OAuthShim(issue_tokens=...)`` overrides it. ``identity``:
    # ``"id_token"`` = the verified ID token, else the userinfo endpoint (OpenID Connect Core
    # §3.1.3.7, §5.3); ``"userinfo"`` = the userinfo endpoint only; ``"github"`` = GitHub's
    # REST ``GET /user`` (and ``/user/emails``) under ``user_api``, the REST API's base URL.
    # ``userinfo_endpoint``: overrides discovery's.
    issue_tokens: bool | None = None
    identity: IdentitySource = "id_token"
    userinfo_endpoint: str | None = None
    user_api: str | None = None
    # How the IdP separates the scopes it reports in a token response (RFC 6749 §3.3: spaces;
    # GitHub: commas). A comma may be part of a scope token, so only the preset can say.
    granted_scope_delimiter: str = " "

    @classmethod
    def oidc(cls, *, client_id: str, client_secret: str, **options: Unpack[UpstreamOptions]) -> Upstream:
        """A generic OpenID Connect / RFC 8414 provider.

        ``issuer`` or ``metadata_url`` is required unless every endpoint is given explicitly.
        ``audience`` is what the IdP puts in ``aud`` of the access tokens it mints for this API;
        ``audience_param`` says how to ask for it: ``"resource"`` (RFC 8707), ``"audience"``
        (Auth0 style) or ``"none"`` (the IdP decides on its own).
        ``default_scopes`` are requested when an MCP client asks for none; ``extra_scopes``
        are always added (``offline_access`` for refresh tokens, say). ``scope_prefix`` is put
        in front of every non-OpenID scope sent to the IdP (Entra ID names API scopes
        ``api://<app>/<scope>`` while its tokens carry ``<scope>``). ``access_tokens`` says what
        the IdP's access tokens look like, so that the verifier refuses its ID tokens
        (:class:`AccessTokenProfile`; each preset sets its own).
        ``issue_tokens``, ``identity``, ``userinfo_endpoint``, ``user_api``,
        ``granted_scope_delimiter``: issued-token mode, see the fields of the same names.
        """
        # The custom-metadata upstream has no client; every real one needs both halves.
        if not client_id:
            raise ConfigurationError("Upstream.client_id is required: the client you registered at the IdP.")
        if not client_secret:
            raise ConfigurationError("Upstream.client_secret is required: the shim is a confidential client.")
        settings: dict[str, Any] = {**options, "extra_authorize_params": dict(options.get("extra_authorize_params") or {})}
        for name in ("default_scopes", "extra_scopes"):
            if name in settings:
                settings[name] = tuple(settings[name])
        issuer, endpoints = options.get("issuer"), (options.get("authorization_endpoint"), options.get("token_endpoint"))
        if issuer and not options.get("metadata_url") and not all(endpoints):
            settings["metadata_url"] = issuer.rstrip("/") + "/.well-known/openid-configuration"
        return cls(client_id=client_id, client_secret=client_secret, **settings)

    def __post_init__(self) -> None:
        """Refuse a configuration that cannot work, naming the setting to change."""
        if not (self.issuer or self.metadata_url or (self.authorization_endpoint and self.token_endpoint)):
            raise ConfigurationError(
                "Upstream needs issuer= or metadata_url= (or explicit authorization_endpoint= and token_endpoint=)."
            )
        for name in URL_FIELDS:
            url = getattr(self, name)
            if url is not None and (problem := service_url_problem(url)) is not None:
                raise ConfigurationError(f"Upstream {name} must {problem}, got {url!r}.")
        if self.audience_param not in AUDIENCE_PARAMS:
            raise ConfigurationError("audience_param must be 'resource', 'audience' or 'none'.")
        if self.token_auth_method not in TOKEN_AUTH_METHODS:
            raise ConfigurationError("token_auth_method must be 'client_secret_post' or 'client_secret_basic'.")
        if not isinstance(self.access_tokens, AccessTokenProfile):
            raise ConfigurationError("access_tokens must be an AccessTokenProfile (e.g. AccessTokenProfile.rfc9068()).")
        if clash := sorted(RESERVED_AUTHORIZE_PARAMS & {key.lower() for key in self.extra_authorize_params}):
            raise ConfigurationError(
                f"extra_authorize_params may not set {', '.join(clash)}: the shim sets these itself."
            )
        # Issued-token mode: the settings must work together.
        if self.issue_tokens not in (None, True, False):
            raise ConfigurationError("issue_tokens must be True, False or None (None: the preset decides).")
        if self.identity not in IDENTITY_SOURCES:
            sources = ", ".join(map(repr, IDENTITY_SOURCES))
            raise ConfigurationError(f"identity must be one of {sources}, got {self.identity!r}.")
        if self.identity == "github" and not self.user_api:
            raise ConfigurationError("identity='github' needs user_api=, the REST API's base URL (https://api.github.com).")
        if self.user_api and self.identity != "github":
            raise ConfigurationError("user_api is read only with identity='github'.")
        if self.granted_scope_delimiter not in (" ", ","):
            raise ConfigurationError("granted_scope_delimiter must be ' ' (RFC 6749) or ',' (GitHub).")

    def upstream_scope(self, scopes: str) -> str:
        """The ``scope`` value to send the IdP for a space-separated list of our scopes."""
        if not self.scope_prefix:
            return scopes
        return " ".join(s if s in OPENID_SCOPES else self.scope_prefix + s for s in scopes.split())

    def client_scope(self, scope: str) -> str:
        """The IdP's granted ``scope`` in our names: ``scope_prefix`` taken off again (Entra ID
        grants ``api://<app>/read`` for ``read``), as clients asked for and refresh with them."""
        if not self.scope_prefix:
            return scope
        prefix = self.scope_prefix
        return " ".join(s.removeprefix(prefix) for s in scope.split())

    # -- presets: values built on oidc() ----------------------------------------------------

    @classmethod
    def auth0(
        cls, *, domain: str, client_id: str, client_secret: str, audience: str, **options: object
    ) -> Upstream:
        """Auth0: a "Regular Web Application" plus an API whose identifier is ``audience``.

        Auth0 has no dynamic registration for this and wants ``audience=`` instead of RFC 8707
        ``resource``; its issuer ends with a slash. Enable "Allow Offline Access" on the API for
        refresh tokens.
        """
        host = domain.removeprefix("https://").rstrip("/")
        return cls.oidc(
            issuer=f"https://{host}/", client_id=client_id, client_secret=client_secret, audience=audience,
            **with_defaults(
                options, audience_param="audience", default_scopes=("openid", "profile", "email"),
                extra_scopes=("offline_access",), name="auth0", access_tokens=AUTH0_ACCESS_TOKENS,
            ),
        )

    @classmethod
    def keycloak(
        cls, *, base_url: str, realm: str, client_id: str, client_secret: str, audience: str | None = None,
        **options: object,
    ) -> Upstream:
        """Keycloak: a confidential OpenID Connect client in ``realm``.

        Keycloak ignores ``resource``/``audience`` parameters: add an "Audience" mapper to the
        client (included custom audience = your MCP resource URL, or ``audience``) so access
        tokens carry it in ``aud``.
        """
        return cls.oidc(
            issuer=f"{base_url.rstrip('/')}/realms/{realm}", client_id=client_id, client_secret=client_secret,
            audience=audience, **with_defaults(
                options, audience_param="none", extra_scopes=("offline_access",), name="keycloak",
                access_tokens=KEYCLOAK_ACCESS_TOKENS,
            ),
        )

    @classmethod
    def okta(
        cls, *, domain: str, client_id: str, client_secret: str, authorization_server: str = "default",
        audience: str = "api://default", **options: object,
    ) -> Upstream:
        """Okta: a Web application and a custom authorization server (``default`` unless named).

        The authorization server's audience (``api://default`` for the default one) is what its
        access tokens carry; Okta chooses it, so nothing is sent for it.
        """
        host = domain.removeprefix("https://").rstrip("/")
        return cls.oidc(
            issuer=f"https://{host}/oauth2/{authorization_server}", client_id=client_id,
            client_secret=client_secret, audience=audience, **with_defaults(
                options, audience_param="none", extra_scopes=("offline_access",), name="okta", access_tokens=OKTA_ACCESS_TOKENS,
            ),
        )

    @classmethod
    def entra(
        cls, *, tenant_id: str, client_id: str, client_secret: str, app_id_uri: str | None = None,
        default_scopes: tuple[str, ...] | list[str] = ("openid", "profile"), **options: object,
    ) -> Upstream:
        """Microsoft Entra ID (v2.0 endpoints), the app registration exposing an API.

        Entra refuses RFC 8707 ``resource`` (``invalid_target``); API scopes are requested as
        ``<app_id_uri>/<scope>`` (default ``api://<client_id>``) and the tokens carry the short
        name in ``scp``. Set ``accessTokenAcceptedVersion: 2`` in the app manifest so access
        tokens are v2 (``aud`` = the client ID, ``iss`` = the v2.0 issuer checked here).
        """
        prefix = (app_id_uri or f"api://{client_id}").rstrip("/") + "/"
        return cls.oidc(
            issuer=f"https://login.microsoftonline.com/{tenant_id}/v2.0", client_id=client_id,
            client_secret=client_secret, audience=client_id, default_scopes=default_scopes,
            **with_defaults(
                options, audience_param="none", extra_scopes=("offline_access",), name="entra", scope_prefix=prefix,
                access_tokens=ENTRA_ACCESS_TOKENS,
            ),
        )

    # -- presets for issued-token mode: IdPs whose access tokens the shim cannot verify -------

    def resolve_issue_tokens(self, requested: bool | None = None) -> bool:
        """Whether the shim issues its own access tokens: ``requested`` (the argument of
        ``OAuthShim(issue_tokens=...)``) when it is not ``None``, else this upstream's
        ``issue_tokens``; no preference at all means passthrough (``False``)."""
        return bool(self.issue_tokens) if requested is None else requested

    def granted_scopes(self, scope: str) -> tuple[str, ...]:
        """The scopes of a token response's ``scope`` value, split as this IdP writes them."""
        return tuple(s for s in (part.strip() for part in scope.split(self.granted_scope_delimiter)) if s)

    @classmethod
    def google(
        cls, client_id: str, client_secret: str, *,
        default_scopes: tuple[str, ...] | list[str] = ("openid", "email", "profile"), **options: object,
    ) -> Upstream:
        """Google: an OAuth client of type "Web application" (Google Cloud console).

        Google's access tokens are opaque and good only for Google's APIs, and its discovery
        names no introspection endpoint: the shim issues its own (``issue_tokens=True``) and
        learns the user from the verified ID token (else the userinfo endpoint). Google takes
        no ``resource``/``audience`` parameter and refuses the ``offline_access`` scope; a
        refresh token comes with ``access_type=offline``, on every login with ``prompt=consent``.
        """
        return cls.oidc(
            issuer=GOOGLE_ISSUER, client_id=client_id, client_secret=client_secret, default_scopes=default_scopes,
            **with_defaults(
                options, audience_param="none", extra_authorize_params={"access_type": "offline", "prompt": "consent"},
                name="google", issue_tokens=True, identity="id_token",
            ),
        )

    @classmethod
    def github(
        cls, client_id: str, client_secret: str, *,
        default_scopes: tuple[str, ...] | list[str] = ("read:user", "user:email"), **options: object,
    ) -> Upstream:
        """GitHub: an OAuth App (or a GitHub App's user authorization), plain OAuth 2.0.

        GitHub publishes no discovery document, no JWKS and no ID tokens, and its access tokens
        are opaque: the endpoints are fixed here, the shim issues its own tokens and learns the
        user from GitHub's REST API (``GET https://api.github.com/user``; the subject is the
        numeric ``id``, which unlike ``login`` never changes). The token POST carries
        ``Accept: application/json`` (as every token request of the shim does), without which
        GitHub answers form-encoded. PKCE S256 is supported. OAuth App tokens do not expire
        and come without a refresh token; a GitHub App with expiring user tokens returns
        ``expires_in``, ``refresh_token`` and ``refresh_token_expires_in``. For GitHub
        Enterprise Server, override ``authorization_endpoint``, ``token_endpoint`` and
        ``user_api`` (the REST API's base URL, ``https://HOST/api/v3``).
        """
        return cls.oidc(
            client_id=client_id, client_secret=client_secret, default_scopes=default_scopes,
            **with_defaults(
                options, authorization_endpoint=GITHUB_AUTHORIZATION_ENDPOINT, token_endpoint=GITHUB_TOKEN_ENDPOINT,
                audience_param="none", name="github", issue_tokens=True, identity="github", user_api=GITHUB_API_URL,
                granted_scope_delimiter=",",
            ),
        )

    @classmethod
    def cognito(
        cls, *, region: str, user_pool_id: str, client_id: str, client_secret: str, domain: str | None = None,
        default_scopes: tuple[str, ...] | list[str] = ("openid", "email", "profile"), **options: object,
    ) -> Upstream:
        """Amazon Cognito: a user pool with a domain and an app client with a secret.

        The issuer is ``https://cognito-idp.<region>.amazonaws.com/<user_pool_id>``; its
        discovery names the authorization and token endpoints on the user pool's domain.
        Cognito's access tokens are JWTs without ``aud`` (they carry ``client_id``): the shim
        issues its own (``issue_tokens=True``) and learns the user from the verified ID token
        (``aud`` = the app client ID). ``domain``: the user pool's domain, either its prefix
        (``myapp`` = ``myapp.auth.<region>.amazoncognito.com``) or a full host name (a custom
        domain); given, the ``/oauth2/*`` endpoints on it (revocation and userinfo included) are
        used whatever discovery says. Cognito issues a refresh token with every code exchange
        and knows no ``offline_access`` scope, so none is asked for.
        """
        if not _COGNITO_REGION.fullmatch(region):
            raise ConfigurationError(f"Upstream.cognito region must look like 'eu-west-1', got {region!r}.")
        if not re.fullmatch(re.escape(region) + r"_[A-Za-z0-9]+", user_pool_id):
            raise ConfigurationError(
                f"Upstream.cognito user_pool_id must look like '{region}_AbCdEf123' (the pool's region, '_', "
                f"its ID), got {user_pool_id!r}."
            )
        issuer = f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
        defaults: dict[str, object] = {}
        if domain:
            host = domain.removeprefix("https://").rstrip("/")
            if "." not in host:
                host = f"{host}.auth.{region}.amazoncognito.com"
            endpoints = f"https://{host}/oauth2"
            defaults = {
                # Discovery is still read (for jwks_uri); the endpoints named here win over it.
                "metadata_url": issuer + "/.well-known/openid-configuration",
                "authorization_endpoint": endpoints + "/authorize",
                "token_endpoint": endpoints + "/token",
                "revocation_endpoint": endpoints + "/revoke",
                "userinfo_endpoint": endpoints + "/userInfo",
            }
        return cls.oidc(
            issuer=issuer, client_id=client_id, client_secret=client_secret, default_scopes=default_scopes,
            **with_defaults(
                options, audience_param="none", token_auth_method="client_secret_basic", name="cognito", issue_tokens=True,
                identity="id_token", **defaults,
            ),
        )

    def replace(self, **changes: object) -> Upstream:
        """A copy with some fields changed (presets are values: adjust them this way)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


GOOGLE_ISSUER = "https://accounts.google.com"
GITHUB_AUTHORIZATION_ENDPOINT = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_ENDPOINT = "https://github.com/login/oauth/access_token"
GITHUB_API_URL = "https://api.github.com"
_COGNITO_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+")


def with_defaults(options: Mapping[str, object], **defaults: object) -> dict[str, Any]:
    """A preset's ``defaults`` for :meth:`Upstream.oidc` with the caller's ``options`` over them."""
    return {**defaults, **options}
