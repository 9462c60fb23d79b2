"""``POST /oauth/token``: read the request, authenticate the client, dispatch on ``grant_type``.

RFC 6749 §3.2: the request is ``application/x-www-form-urlencoded`` and each parameter appears
once; §2.3 and §3.2.1: the client authenticates (or, being public, names itself). What every
grant shares is checked here (RFC 8707 §2.2: ``resource`` must name this resource); the rest is
the grant handler's (:mod:`..grants`), chosen by ``grant_type`` from a registry, so a new grant
is a new handler and one registry entry. An unknown ``grant_type`` is
``unsupported_grant_type`` (RFC 6749 §5.2).

In strict mode the endpoint is rate limited per address (before the body is read) and per
client and address (once the client is known), answering 429 ``temporarily_unavailable`` with
``Retry-After``; a strict-mode store that cannot answer gives 503 (``on_unavailable="refuse"``).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from ..clients import authenticate_client, presented_credentials
from ..context import ShimContext
from ..errors import (
    InvalidRequestError,
    OAuth2Error,
    UnsupportedGrantTypeError,
    invalid_target,
    json_error,
    oauth_error,
)
from ..grants import GRANTS, ConfidentialGrant, GrantClass, TokenGrant, is_confidential, offered_grants
from ..machine_access import authenticate_machine_client
from ..media_types import FORM, is_media_type
from ..rfc8707 import resource_matches
from ..strict import RateBucket, StrictModeUnavailable
from ..strict.answers import rate_limited_response, unavailable_response
from ..strict.checks import RateLimited, check_rates, client_address, client_and_address
from ..telemetry import TokenRequestSeen
from ..upstream import UpstreamError
from .base import ParameterError, header, omitting_blank, parse_form, read_body_limited

MAX_TOKEN_BODY = 64 * 1024


class TokenHandler:
    """The token endpoint; ``grants`` maps each ``grant_type`` to its handler class, of which
    those the configuration serves are built (:func:`..grants.offered_grants`)."""

    def __init__(self, ctx: ShimContext, grants: Mapping[str, GrantClass] = GRANTS) -> None:
        self.ctx = ctx
        self._grants: dict[str, TokenGrant] = {}
        # Grants whose handler authenticates the (confidential) client itself.
        self._confidential: dict[str, ConfidentialGrant] = {}
        for name, grant in offered_grants(ctx, grants).items():
            handler = grant(ctx)
            if is_confidential(handler):
                self._confidential[name] = handler
            else:
                self._grants[name] = handler

    async def __call__(self, request: Request) -> Response:
        seen = TokenRequestSeen()
        try:
            response = await self._handle(request, seen)
        except OAuth2Error as err:
            response = json_error(err)
        except UpstreamError as err:
            response = json_error(oauth_error(err.error, err.description, err.status_code), headers=err.headers)
        except RateLimited as refused:
            response = rate_limited_response(refused.decision)
        except StrictModeUnavailable as exc:
            response = unavailable_response(exc)
        seen.answered(response)
        return response

    async def _handle(self, request: Request, seen: TokenRequestSeen) -> Response:
        # Without strict mode there is nothing to count: no coroutine is made for it.
        strict = self.ctx.strict
        address = ""
        if strict is not None:
            address = client_address(request)
            await check_rates(strict, (RateBucket.TOKEN_IP, address))
        form = await read_token_request(request)
        grant_type = seen.grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequestError(description="grant_type is required.")
        grant = self._grants.get(grant_type)
        if grant is None:
            confidential = self._confidential.get(grant_type)
            if confidential is None:
                raise UnsupportedGrantTypeError(grant_type[:60])
            self._check_resource(form)
            machine = await authenticate_machine_client(
                self.ctx, form, header(request, b"authorization"), grant_type=grant_type
            )
            if strict is not None:
                await check_rates(strict, (RateBucket.TOKEN_CLIENT_IP, client_and_address(machine.client_id, address)))
            return await confidential.respond_to(form, machine)
        credentials = presented_credentials(form, header(request, b"authorization"))
        client = await authenticate_client(
            self.ctx.clients, credentials, static_secret=self.ctx.upstream.client_secret
        )
        seen.client_kind = client.kind
        if strict is not None:
            await check_rates(strict, (RateBucket.TOKEN_CLIENT_IP, client_and_address(client.client_id, address)))
        self._check_resource(form)
        return await grant.respond(form, client)

    def _check_resource(self, form: Mapping[str, str]) -> None:
        """RFC 8707 §2.2: ``resource``, when sent, must name this resource."""
        resource = form.get("resource")
        if resource is not None and not resource_matches(resource, self.ctx.resource):
            raise invalid_target(f"This server only issues tokens for {self.ctx.resource}.")


async def read_token_request(request: Request) -> dict[str, str]:
    """The token request's parameters (RFC 6749 §3.2; one sent without a value counts as
    omitted), or ``invalid_request``."""
    if not is_media_type(header(request, b"content-type"), FORM):
        raise InvalidRequestError(description="The token request must be application/x-www-form-urlencoded.")
    body = await read_body_limited(request, MAX_TOKEN_BODY)
    if body is None:
        raise InvalidRequestError(description="The token request is too large.")
    try:
        return omitting_blank(parse_form(body))
    except ParameterError as exc:
        raise InvalidRequestError(description=exc.description) from None
