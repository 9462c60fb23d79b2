"""The FastAPI-MCP 0.4 configuration models (`AuthConfig`, `OAuthMetadata`) and the settings
they share with `mcp-oauth-shim serve` (public URL, signing keys from the environment)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi.params import Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

__all__ = [
    "DEFAULT_METADATA_PATH",
    "ENV_PUBLIC_URL",
    "ENV_SECRET_KEYS",
    "AuthConfig",
    "OAuthMetadata",
    "public_url_of",
    "secret_keys_of",
]

logger = logging.getLogger("mcp_bridge.compat")

# The variables `mcp-oauth-shim serve` reads, so one deployment configures both the same way.
ENV_PUBLIC_URL = "MCP_OAUTH_SHIM_PUBLIC_URL"
ENV_SECRET_KEYS = "MCP_OAUTH_SHIM_SECRET_KEYS"

DEFAULT_METADATA_PATH = "/.well-known/oauth-authorization-server"


def _not_empty(value: list[str], info: ValidationInfo) -> list[str]:
    # RFC 8414 §2: an advertised list with no member says nothing and breaks clients.
    if not value:
        raise ValueError(f"{info.field_name} cannot be empty")
    return value


_NonEmpty = Annotated[list[str], AfterValidator(_not_empty)]


class OAuthMetadata(BaseModel):
    """RFC 8414 §2 authorization server metadata, for `AuthConfig(custom_oauth_metadata=...)`.

    FastAPI-MCP's field names and defaults; unknown members (`jwks_uri`, `revocation_endpoint`,
    ...) are kept, because the document is served as given and `jwks_uri` is what lets the
    endpoint verify tokens.
    """

    model_config = ConfigDict(extra="allow")

    issuer: str
    authorization_endpoint: str | None = None
    token_endpoint: str
    scopes_supported: _NonEmpty = ["openid", "profile", "email"]
    response_types_supported: _NonEmpty = ["code"]
    grant_types_supported: _NonEmpty = ["authorization_code", "client_credentials"]
    token_endpoint_auth_methods_supported: _NonEmpty = ["none"]
    code_challenge_methods_supported: _NonEmpty = ["S256"]
    registration_endpoint: str | None = None

    @model_validator(mode="after")
    def _authorization_endpoint_for_code_grant(self) -> OAuthMetadata:
        # RFC 8414 §2: required unless no grant type uses the authorization endpoint.
        if "authorization_code" in self.grant_types_supported and not self.authorization_endpoint:
            raise ValueError("authorization_endpoint is required when authorization_code grant type is supported")
        return self

    def document(self) -> dict[str, Any]:
        """The members the user set (FastAPI-MCP served exactly these, defaults left out)."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class AuthConfig(BaseModel):
    """FastAPI-MCP 0.4's `AuthConfig`, same fields, same validators, plus a few of ours.

    Ours (all optional): `secret_keys` (default: `MCP_OAUTH_SHIM_SECRET_KEYS`, else one key
    generated per process, with a warning), `resource` (default: public URL + mount path),
    `scopes_supported`, `audience_param`, `token_auth_method`, `allowed_redirect_uris`.
    Unknown fields are refused: a misspelled security setting must not be silently dropped.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    version: Literal["2025-03-26"] = "2025-03-26"
    dependencies: Sequence[Depends] | None = None
    issuer: str | None = None
    oauth_metadata_url: str | None = None
    authorize_url: str | None = None
    audience: str | None = None
    default_scope: str = "openid profile email"
    client_id: str | None = None
    client_secret: str | None = None
    custom_oauth_metadata: OAuthMetadata | dict[str, Any] | None = None
    setup_proxies: bool = False
    setup_fake_dynamic_registration: bool = True
    metadata_path: str = DEFAULT_METADATA_PATH

    secret_keys: list[str] | None = None
    resource: str | None = None
    scopes_supported: list[str] | None = None
    audience_param: Literal["resource", "audience", "none"] | None = None
    token_auth_method: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"
    allowed_redirect_uris: list[str] = []

    @field_validator("custom_oauth_metadata")
    @classmethod
    def _metadata_model(cls, value: OAuthMetadata | dict[str, Any] | None) -> OAuthMetadata | None:
        return None if value is None else OAuthMetadata.model_validate(value)

    @field_validator("metadata_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("metadata_path must be an absolute path such as /.well-known/oauth-authorization-server")
        return value

    @model_validator(mode="after")
    def _required_fields(self) -> AuthConfig:
        # FastAPI-MCP's rules, same messages.
        if self.custom_oauth_metadata is None and self.issuer is None and not self.dependencies:
            raise ValueError("at least one of 'issuer', 'custom_oauth_metadata' or 'dependencies' is required")
        if self.setup_proxies:
            if self.client_id is None:
                raise ValueError("'client_id' is required when 'setup_proxies' is True")
            if self.setup_fake_dynamic_registration and not self.client_secret:
                raise ValueError("'client_secret' is required when 'setup_fake_dynamic_registration' is True")
        # Ours: the shim is the confidential client at the IdP (it exchanges codes with the
        # secret, which never leaves the server), and it must be able to find the IdP.
        if self.proxies_active:
            if not self.client_secret:
                raise ValueError(
                    "'client_secret' is required when 'setup_proxies' is True: the token endpoint "
                    "exchanges codes at your IdP with it (MCP clients never receive it)"
                )
            if self.issuer is None and self.oauth_metadata_url is None:
                raise ValueError("'issuer' or 'oauth_metadata_url' is required when 'setup_proxies' is True")
            if not self.setup_fake_dynamic_registration and not self.allowed_redirect_uris:
                # Without registration, clients present the IdP client_id with the redirect URIs
                # that used to be registered at the IdP; nothing else may receive codes.
                raise ValueError(
                    "'allowed_redirect_uris' is required when 'setup_fake_dynamic_registration' is False: "
                    "list the redirect URIs your clients use (e.g. http://127.0.0.1:8080/oauth/callback)"
                )
        return self

    @property
    def proxies_active(self) -> bool:
        """FastAPI-MCP ignores `setup_proxies` when custom metadata is given; so do we."""
        return self.setup_proxies and self.custom_oauth_metadata is None


def public_url_of(value: str) -> str | None:
    """The configured public URL without trailing slash; the shim checks the rest (https, ...)."""
    url = value.strip().rstrip("/")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        from mcp_oauth_shim import ConfigurationError

        raise ConfigurationError(
            f"public_url ({ENV_PUBLIC_URL}) must be an absolute http(s) URL such as "
            f"https://api.example.com, got {value!r}."
        )
    return url


def secret_keys_of(config: AuthConfig) -> list[str]:
    """`AuthConfig.secret_keys`, else the variable (comma-separated, newest first), else one
    random key for this process - which only a single process that never restarts can use."""
    if config.secret_keys:
        return list(config.secret_keys)
    from_env = [k.strip() for k in os.environ.get(ENV_SECRET_KEYS, "").split(",") if k.strip()]
    if from_env:
        return from_env
    logger.warning(
        "No signing key configured (AuthConfig(secret_keys=[...]) or %s): using a random key for this "
        "process only. Registrations, logins in progress and refresh tokens stop working at every restart, "
        "and other workers or replicas refuse them. Generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and set %s.",
        ENV_SECRET_KEYS,
        ENV_SECRET_KEYS,
    )
    return [secrets.token_urlsafe(48)]
