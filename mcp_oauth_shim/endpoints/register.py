"""``POST /oauth/register``: RFC 7591 dynamic client registration, without storing anything.

The answer's ``client_id`` is the registration itself, signed
(:class:`..payloads.ClientRegistration`), so any replica can read it back. In
``registration="static"`` mode the answer names the one upstream client instead. What the
request may ask for is :mod:`..rfc7591`'s. In strict mode registrations are rate limited per
address (429 ``temporarily_unavailable`` with ``Retry-After``).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import jsonsafe
from ..context import ShimContext
from ..errors import NO_STORE, InvalidClientMetadataError, InvalidRedirectURIError, json_error
from ..media_types import JSON, is_media_type
from ..payloads import ClientRegistration
from ..rfc7591 import ClientMetadata, parse_client_metadata
from ..strict import RateBucket, StrictModeUnavailable
from ..strict.answers import rate_limited_response, unavailable_response
from ..strict.checks import RateLimited, check_rates, client_address
from .base import read_body_limited

MAX_REGISTRATION_BYTES = 64 * 1024
# The client_id travels in every authorization URL; browsers and proxies cap those.
MAX_CLIENT_ID_LENGTH = 4096


class RegistrationHandler:
    def __init__(self, ctx: ShimContext, *, mode: str, allowed_redirect_uris: tuple[str, ...]) -> None:
        self.ctx = ctx
        self.mode = mode
        self.allowed = allowed_redirect_uris

    async def __call__(self, request: Request) -> Response:
        if self.ctx.strict is not None:
            try:
                await check_rates(self.ctx.strict, (RateBucket.REGISTER_IP, client_address(request)))
            except RateLimited as refused:
                return rate_limited_response(refused.decision)
            except StrictModeUnavailable as exc:
                return unavailable_response(exc)
        if not is_media_type(request.headers.get("content-type"), JSON):
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
            meta = None
        if not isinstance(meta, dict):
            return json_error(InvalidClientMetadataError(description="The registration request must be a JSON object."))
        try:
            metadata = parse_client_metadata(meta, allowed=self.allowed, static=self.mode == "static")
            client_id = self._client_id(metadata)
        except (InvalidClientMetadataError, InvalidRedirectURIError) as err:
            return json_error(err)
        answer = metadata.information_response(client_id, int(time.time()))
        return JSONResponse(answer, status_code=201, headers=NO_STORE)

    def _client_id(self, metadata: ClientMetadata) -> str:
        """The client_id to answer: the upstream one (static mode) or the signed registration."""
        if self.mode == "static":
            return self.ctx.upstream.client_id
        client_id = ClientRegistration(
            redirect_uris=tuple(metadata.redirect_uris),
            application_type=metadata.application_type,
            client_name=metadata.client_name,
            client_uri=metadata.client_uri,
        ).seal(self.ctx.sealer)
        if len(client_id) > MAX_CLIENT_ID_LENGTH:
            raise InvalidClientMetadataError(
                description="The registration is too large: use fewer or shorter redirect_uris and a shorter name."
            )
        return client_id
