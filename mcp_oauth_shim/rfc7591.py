"""RFC 7591 dynamic client registration, without storing anything.

Nothing is registered at the IdP: every MCP client is served by the one upstream client. The
answer's ``client_id`` is the registration itself, signed, so any replica can read it back.
The client is always public (``token_endpoint_auth_method: none``; RFC 7591 §3.2.1 lets the
server replace what the client asked for) and never sees the upstream secret.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import jsonsafe
from .context import ShimContext
from .endpoints.base import read_body_limited
from .errors import (
    NO_STORE,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
    ascii_description,
    json_error,
)
from .redirects import RedirectURIError, check_registrable
from .sealing import CLIENT

logger = logging.getLogger("mcp_oauth_shim.register")

MAX_REGISTRATION_BYTES = 64 * 1024
MAX_REDIRECT_URIS = 20
MAX_CLIENT_ID_LENGTH = 4096
_GRANT_TYPES = {"authorization_code", "refresh_token"}


class RegistrationHandler:
    def __init__(self, ctx: ShimContext, *, mode: str, allowed_redirect_uris: tuple[str, ...]) -> None:
        self.ctx = ctx
        self.mode = mode
        self.allowed = allowed_redirect_uris

    async def __call__(self, request: Request) -> Response:
        if not _is_json(request.headers.get("content-type")):
            # RFC 7591 §3.1: the request is application/json. §3.2.2: errors are 400 with an
            # error code; a body in another media type is metadata we cannot read.
            return json_error(
                InvalidClientMetadataError(description="The registration request must be application/json.")
            )
        body = await read_body_limited(request, MAX_REGISTRATION_BYTES)
        if body is None:
            return json_error(InvalidClientMetadataError(description="The registration request is too large."))
        try:
            meta = jsonsafe.loads(body)
        except (ValueError, UnicodeDecodeError):
            return json_error(InvalidClientMetadataError(description="The registration request must be a JSON object."))
        if not isinstance(meta, dict):
            return json_error(InvalidClientMetadataError(description="The registration request must be a JSON object."))
        try:
            answer = self._register(meta)
        except (InvalidClientMetadataError, InvalidRedirectURIError) as err:
            return json_error(err)
        return JSONResponse(answer, status_code=201, headers=NO_STORE)

    def _register(self, meta: dict[str, Any]) -> dict[str, Any]:
        redirect_uris = _redirect_uris(meta.get("redirect_uris"), self.allowed, static=self.mode == "static")
        grant_types = meta.get("grant_types", ["authorization_code", "refresh_token"])
        if not _str_list(grant_types) or not set(grant_types) <= _GRANT_TYPES or "authorization_code" not in grant_types:
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
        client_uri = _optional_str(meta, "client_uri", 2000)
        if client_uri is not None and not client_uri.startswith("https://"):
            client_uri = None  # only ever displayed; an unusable value is dropped, not fatal
        scope = _optional_str(meta, "scope", 2000)
        method = meta.get("token_endpoint_auth_method", "none")
        if not isinstance(method, str):
            raise InvalidClientMetadataError(description="token_endpoint_auth_method must be a string.")
        if method not in ("none", "client_secret_post", "client_secret_basic"):
            logger.info("registration asked for %s; answering with a public client", method[:40])

        now = int(time.time())
        if self.mode == "static":
            client_id = self.ctx.upstream.client_id
        else:
            payload: dict[str, Any] = {"r": redirect_uris, "t": application_type}
            if name:
                payload["n"] = name
            if client_uri:
                payload["u"] = client_uri
            client_id = self.ctx.sealer.seal(CLIENT, payload)
            if len(client_id) > MAX_CLIENT_ID_LENGTH:
                # It travels in every authorization URL; browsers and proxies cap those.
                raise InvalidClientMetadataError(
                    description="The registration is too large: use fewer or shorter redirect_uris and a shorter name."
                )
        answer: dict[str, Any] = {
            "client_id": client_id,
            "client_id_issued_at": now,
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": list(dict.fromkeys(grant_types)),
            "response_types": ["code"],
            "application_type": application_type,
        }
        if name:
            answer["client_name"] = name
        if client_uri:
            answer["client_uri"] = client_uri
        if scope is not None:
            answer["scope"] = scope
        return answer


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
            raise InvalidRedirectURIError(description=ascii_description(str(exc)))
        if static:
            from .redirects import matches

            if not matches(uri, allowed):
                raise InvalidRedirectURIError(
                    description="This server only accepts the redirect URIs its operator allow-listed."
                )
    return uris


def _is_json(content_type: str | None) -> bool:
    """``application/json``, in any case, with or without parameters (RFC 9110 §8.3.1)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _optional_str(meta: dict[str, Any], key: str, limit: int) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or not _encodable(value):
        raise InvalidClientMetadataError(description=f"{key} must be a string of at most {limit} characters.")
    return value


def _encodable(value: str) -> bool:
    """JSON may carry lone UTF-16 surrogates that no UTF-8 answer can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
