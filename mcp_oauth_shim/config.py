"""Configuration values: the upstream identity provider and how the shim talks to it.

An IdP preset is a value, not a subclass: ``Upstream.oidc(...)`` (and the presets that build on
it) return a frozen :class:`Upstream` that the rest of the shim reads.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

AudienceParam = Literal["resource", "audience", "none"]
TokenAuthMethod = Literal["client_secret_post", "client_secret_basic"]

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

    @classmethod
    def oidc(
        cls,
        *,
        client_id: str,
        client_secret: str,
        issuer: str | None = None,
        metadata_url: str | None = None,
        audience: str | None = None,
        audience_param: AudienceParam = "resource",
        default_scopes: tuple[str, ...] | list[str] = ("openid",),
        extra_scopes: tuple[str, ...] | list[str] = (),
        extra_authorize_params: Mapping[str, str] | None = None,
        token_auth_method: TokenAuthMethod = "client_secret_post",
        authorization_endpoint: str | None = None,
        token_endpoint: str | None = None,
        revocation_endpoint: str | None = None,
        jwks_uri: str | None = None,
        timeout: float = 10.0,
        name: str = "oidc",
        scope_prefix: str = "",
    ) -> Upstream:
        """A generic OpenID Connect / RFC 8414 provider.

        ``issuer`` or ``metadata_url`` is required unless every endpoint is given explicitly.
        ``audience`` is what the IdP puts in ``aud`` of the access tokens it mints for this API;
        ``audience_param`` says how to ask for it: ``"resource"`` (RFC 8707), ``"audience"``
        (Auth0 style) or ``"none"`` (the IdP decides on its own).
        ``default_scopes`` are requested when an MCP client asks for none; ``extra_scopes``
        are always added (``offline_access`` for refresh tokens, say). ``scope_prefix`` is put
        in front of every non-OpenID scope sent to the IdP (Entra ID names API scopes
        ``api://<app>/<scope>`` while its tokens carry ``<scope>``).
        """
        if not client_id:
            raise ConfigurationError("Upstream.client_id is required: the client you registered at the IdP.")
        if not client_secret:
            raise ConfigurationError("Upstream.client_secret is required: the shim is a confidential client.")
        if not (issuer or metadata_url or (authorization_endpoint and token_endpoint)):
            raise ConfigurationError(
                "Upstream needs issuer= or metadata_url= (or explicit authorization_endpoint= and token_endpoint=)."
            )
        for name_, url in (
            ("issuer", issuer),
            ("metadata_url", metadata_url),
            ("authorization_endpoint", authorization_endpoint),
            ("token_endpoint", token_endpoint),
            ("revocation_endpoint", revocation_endpoint),
            ("jwks_uri", jwks_uri),
        ):
            if url is not None:
                _require_http_url(name_, url)
        if audience_param not in ("resource", "audience", "none"):
            raise ConfigurationError("audience_param must be 'resource', 'audience' or 'none'.")
        if token_auth_method not in ("client_secret_post", "client_secret_basic"):
            raise ConfigurationError("token_auth_method must be 'client_secret_post' or 'client_secret_basic'.")
        params = dict(extra_authorize_params or {})
        clash = sorted(RESERVED_AUTHORIZE_PARAMS & {k.lower() for k in params})
        if clash:
            raise ConfigurationError(
                f"extra_authorize_params may not set {', '.join(clash)}: the shim sets these itself."
            )
        if issuer and not metadata_url and not (authorization_endpoint and token_endpoint):
            metadata_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        return cls(
            client_id=client_id,
            client_secret=client_secret,
            issuer=issuer,
            metadata_url=metadata_url,
            authorization_endpoint=authorization_endpoint,
            token_endpoint=token_endpoint,
            revocation_endpoint=revocation_endpoint,
            jwks_uri=jwks_uri,
            audience=audience,
            audience_param=audience_param,
            default_scopes=tuple(default_scopes),
            extra_scopes=tuple(extra_scopes),
            extra_authorize_params=params,
            token_auth_method=token_auth_method,
            timeout=timeout,
            name=name,
            scope_prefix=scope_prefix,
        )

    def upstream_scope(self, scopes: str) -> str:
        """The ``scope`` value to send the IdP for a space-separated list of our scopes."""
        if not self.scope_prefix:
            return scopes
        return " ".join(s if s in OPENID_SCOPES else self.scope_prefix + s for s in scopes.split())

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
        defaults: dict[str, object] = {
            "audience_param": "audience",
            "default_scopes": ("openid", "profile", "email"),
            "extra_scopes": ("offline_access",),
            "name": "auth0",
        }
        host = domain.removeprefix("https://").rstrip("/")
        return cls.oidc(
            issuer=f"https://{host}/", client_id=client_id, client_secret=client_secret, audience=audience,
            **{**defaults, **options},  # type: ignore[arg-type]
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
        defaults: dict[str, object] = {"audience_param": "none", "extra_scopes": ("offline_access",), "name": "keycloak"}
        return cls.oidc(
            issuer=f"{base_url.rstrip('/')}/realms/{realm}", client_id=client_id, client_secret=client_secret,
            audience=audience, **{**defaults, **options},  # type: ignore[arg-type]
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
        defaults: dict[str, object] = {"audience_param": "none", "extra_scopes": ("offline_access",), "name": "okta"}
        host = domain.removeprefix("https://").rstrip("/")
        return cls.oidc(
            issuer=f"https://{host}/oauth2/{authorization_server}", client_id=client_id,
            client_secret=client_secret, audience=audience, **{**defaults, **options},  # type: ignore[arg-type]
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
        defaults: dict[str, object] = {
            "audience_param": "none",
            "extra_scopes": ("offline_access",),
            "name": "entra",
            "scope_prefix": prefix,
        }
        return cls.oidc(
            issuer=f"https://login.microsoftonline.com/{tenant_id}/v2.0", client_id=client_id,
            client_secret=client_secret, audience=client_id, default_scopes=default_scopes,
            **{**defaults, **options},  # type: ignore[arg-type]
        )

    def replace(self, **changes: object) -> Upstream:
        """A copy with some fields changed (presets are values: adjust them this way)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _require_http_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} must be an absolute http(s) URL, got {url!r}.")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(f"{name} must use https (http is only allowed on loopback), got {url!r}.")
    if parts.fragment:
        raise ConfigurationError(f"{name} must not contain a fragment, got {url!r}.")


def is_loopback_host(host: str | None) -> bool:
    """RFC 8252 §7.3 / §8.3: literal loopback addresses, and ``localhost`` for our own config."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
