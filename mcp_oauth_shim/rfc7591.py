"""RFC 7591 client metadata: what a registration request may ask for, and the answer's fields.

Nothing is registered at the IdP: every MCP client is served by the one upstream client. The
client is always public (``token_endpoint_auth_method: none``; RFC 7591 §3.2.1 lets the server
replace what the client asked for) and never sees the upstream secret. The endpoint itself is
:mod:`.endpoints.register`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from .errors import InvalidClientMetadataError, InvalidRedirectURIError, ascii_description
from .pages import SPOOFING_CHARACTERS
from .redirects import RedirectURIError, check_registrable, matches

__all__ = ["MAX_REDIRECT_URIS", "ClientMetadata", "parse_client_metadata"]

logger = logging.getLogger("mcp_oauth_shim.register")

MAX_REDIRECT_URIS = 20
GRANT_TYPES = ("authorization_code", "refresh_token")
# JSON may carry lone UTF-16 surrogates, the only code points no UTF-8 answer can hold.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """The accepted client metadata (RFC 7591 §2), as the shim will answer it."""

    redirect_uris: list[str]
    grant_types: list[str]
    application_type: str
    client_name: str | None
    client_uri: str | None
    scope: str | None

    def information_response(self, client_id: str, issued_at: int) -> dict[str, Any]:
        """RFC 7591 §3.2.1: the client information response (always a public client)."""
        answer: dict[str, Any] = {
            "client_id": client_id,
            "client_id_issued_at": issued_at,
            "redirect_uris": self.redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": self.grant_types,
            "response_types": ["code"],
            "application_type": self.application_type,
        }
        # Only what was given: an empty name or URI is as good as none, an empty scope is a scope.
        given = {"client_name": self.client_name or None, "client_uri": self.client_uri or None, "scope": self.scope}
        return answer | {name: value for name, value in given.items() if value is not None}


def parse_client_metadata(meta: dict[str, Any], *, allowed: tuple[str, ...], static: bool) -> ClientMetadata:
    """The metadata of a registration request (RFC 7591 §2), or the §3.2.2 error.

    ``allowed`` is the operator's allow-list of redirect URIs; with ``static`` every URI must be
    on it (the one upstream client is registered with exactly those).
    """
    redirect_uris = _redirect_uris(meta.get("redirect_uris"), allowed, static=static)
    grant_types = meta.get("grant_types", list(GRANT_TYPES))
    if not _str_list(grant_types) or not set(grant_types) <= set(GRANT_TYPES) or "authorization_code" not in grant_types:
        raise InvalidClientMetadataError(
            description="grant_types may only contain authorization_code and refresh_token."
        )
    response_types = meta.get("response_types", ["code"])
    if not _str_list(response_types) or set(response_types) != {"code"}:
        raise InvalidClientMetadataError(description='response_types must be [code].')
    application_type = meta.get("application_type", "native")
    if application_type not in ("native", "web"):
        raise InvalidClientMetadataError(description="application_type must be native or web.")
    name = _optional_str(meta, "client_name", 200)
    if name is not None and SPOOFING_CHARACTERS.search(name):
        # The consent page shows the name: no line breaks, controls or bidi overrides that
        # could make it read as something else (the rule for metadata documents too).
        raise InvalidClientMetadataError(description="client_name contains control or formatting characters.")
    client_uri = _optional_str(meta, "client_uri", 2000)
    if client_uri is not None and not client_uri.startswith("https://"):
        client_uri = None  # only ever displayed; an unusable value is dropped, not fatal
    scope = _optional_str(meta, "scope", 2000)
    method = meta.get("token_endpoint_auth_method", "none")
    if not isinstance(method, str):
        raise InvalidClientMetadataError(description="token_endpoint_auth_method must be a string.")
    if method not in ("none", "client_secret_post", "client_secret_basic"):
        logger.info("registration asked for %s; answering with a public client", method[:40])
    return ClientMetadata(
        redirect_uris=redirect_uris,
        grant_types=list(dict.fromkeys(grant_types)),
        application_type=application_type,
        client_name=name,
        client_uri=client_uri,
        scope=scope,
    )


def _redirect_uris(value: object, allowed: tuple[str, ...], *, static: bool) -> list[str]:
    if not _str_list(value) or not value:
        raise InvalidRedirectURIError(description="redirect_uris must be a non-empty array of strings.")
    if len(value) > MAX_REDIRECT_URIS:
        raise InvalidRedirectURIError(description=f"At most {MAX_REDIRECT_URIS} redirect_uris may be registered.")
    uris = list(dict.fromkeys(value))
    for uri in uris:
        try:
            check_registrable(uri, allowed=allowed)
        except RedirectURIError as exc:
            raise InvalidRedirectURIError(description=ascii_description(str(exc))) from None
        if static and not matches(uri, allowed):
            raise InvalidRedirectURIError(
                description="This server only accepts the redirect URIs its operator allow-listed."
            )
    return uris


def _str_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _optional_str(meta: dict[str, Any], key: str, limit: int) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or _SURROGATE.search(value):
        raise InvalidClientMetadataError(description=f"{key} must be a string of at most {limit} characters.")
    return value

