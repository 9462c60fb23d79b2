"""``GET /oauth/authorize``: validate the client's request, then ask the person to consent.

RFC 6749 §4.1.1 and §4.1.2.1 (which errors may be redirected), RFC 7636 §4.3 (PKCE, S256 only
per OAuth 2.1), RFC 8707 (resource), RFC 9207 (``iss`` on every response). Nothing goes to the
IdP from here: the confused-deputy rule of the MCP security guidance wants the person to approve
this client on our own page first (:mod:`.consent`).

Errors are redirected to the client only when its redirect URI is trusted before consent,
which here means the operator allow-listed it (RFC 9700 §4.11.2: an authorization server that
redirects errors to any registered URI is an open redirector, since anyone may register any
URI). Every other error, including those of self-registered and metadata-document clients on
loopback, is shown as a page; once the person has approved the client on the consent page its
URI is trusted, and the consent and callback endpoints redirect their errors there.

In strict mode the endpoint is rate limited per address and per client and address before
anything else: a refusal is the error page with 429 and ``Retry-After`` (never a redirect, as
nothing about the request has been checked yet), and a strict-mode store that cannot answer
gives the page with 503 (``on_unavailable="refuse"``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..clients import Client
from ..context import ShimContext
from ..errors import (
    InvalidRequestError,
    OAuth2Error,
    UnsupportedResponseTypeError,
    html_error,
    invalid_target,
    oauth_error,
    redirect_error,
)
from ..payloads import ConsentTicket
from ..redirects import matches
from ..rfc8707 import resource_matches
from ..sealing import digest
from ..strict import RateBucket, StrictModeUnavailable
from ..strict.answers import rate_limited_page, unavailable_page
from ..strict.checks import RateLimited, check_rates, client_address, client_and_address
from ..telemetry import login_step
from .base import ParameterError, omitting_blank, single_params

if TYPE_CHECKING:
    from .consent import ConsentPage

logger = logging.getLogger(__name__)

# RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is exactly 43 characters.
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_STATE_LENGTH = 1024
# OIDC parameters that only shape the IdP's login page; everything else stays here.
FORWARDED_PARAMS = {"login_hint": 256, "ui_locales": 64, "prompt": 64}
_PROMPT_VALUES = {"none", "login", "consent", "select_account"}


class RedirectableError(Exception):
    """An error after the client and its redirect URI were validated: RFC 6749 §4.1.2.1 lets it
    be reported to that URI, which the handler does only when the URI is trusted."""

    def __init__(self, err: OAuth2Error, redirect_uri: str, state: str | None) -> None:
        self.err, self.redirect_uri, self.state = err, redirect_uri, state


async def parse_authorization_request(ctx: ShimContext, request: Request, csrf_digest: str) -> tuple[Client, ConsentTicket]:
    """Validate an authorization request: its client, and the request as the consent form
    carries it (sealed, bound to the browser's CSRF cookie by ``csrf_digest``).

    Raises :class:`OAuth2Error` when the client or redirect URI cannot be trusted (shown as a
    page, never redirected: RFC 6749 §4.1.2.1), :class:`RedirectableError` for the rest.
    """
    try:
        params = omitting_blank(single_params(request))
    except ParameterError as exc:
        raise InvalidRequestError(description=exc.description) from None

    client = await ctx.clients.resolve(params.get("client_id"))
    redirect_uri, given = _redirect_uri(client, params.get("redirect_uri"))
    state = params.get("state")
    if state is not None and len(state) > MAX_STATE_LENGTH:
        raise InvalidRequestError(description=f"state is longer than {MAX_STATE_LENGTH} characters.")

    def fail(err: OAuth2Error) -> RedirectableError:
        return RedirectableError(err, redirect_uri, state)

    if params.get("response_type") != "code":
        raise fail(UnsupportedResponseTypeError(params.get("response_type", "")[:40] or "(none)"))
    for name in ("request", "request_uri"):
        if name in params:
            raise fail(oauth_error(f"{name}_not_supported", f"{name} is not supported by this server."))
    if params.get("response_mode", "query") != "query":
        raise fail(InvalidRequestError(description="Only response_mode=query is supported."))
    challenge = params.get("code_challenge")
    if not challenge:
        raise fail(InvalidRequestError(description="code_challenge is required (PKCE, RFC 7636)."))
    if params.get("code_challenge_method") != "S256":
        raise fail(InvalidRequestError(description="code_challenge_method must be S256."))
    if not _S256_CHALLENGE.match(challenge):
        raise fail(InvalidRequestError(description="code_challenge is not a valid S256 challenge."))
    resource = params.get("resource")
    if resource is not None and not resource_matches(resource, ctx.resource):
        raise fail(invalid_target(f"This server only issues tokens for {ctx.resource}."))
    return client, ConsentTicket(
        client_fingerprint=client.fingerprint,
        redirect_uri=redirect_uri,
        redirect_uri_given=given,
        client_state=state,
        code_challenge=challenge,
        scope=" ".join(choose_scopes(ctx, params.get("scope"))),
        forwarded_params=_forwarded(params),
        csrf_digest=csrf_digest,
    )


def choose_scopes(ctx: ShimContext, requested: str | None) -> tuple[str, ...]:
    """Scopes to ask the IdP for: what the client asked for, within what we advertise.

    RFC 6749 §3.3 lets the server ignore scopes; clients that send none (Claude Code) get the
    defaults. The upstream's ``extra_scopes`` are always added.
    """
    allowed = set(ctx.scopes_supported) | set(ctx.upstream.extra_scopes)
    asked = [s for s in (requested or "").split() if s in allowed]
    chosen = asked or list(ctx.default_scopes)
    return tuple(dict.fromkeys([*chosen, *ctx.upstream.extra_scopes]))


def _redirect_uri(client: Client, requested: str | None) -> tuple[str, bool]:
    if requested is None:
        # RFC 6749 §3.1.2.3: optional only when exactly one URI is registered.
        if len(client.redirect_uris) == 1:
            return client.redirect_uris[0], False
        raise InvalidRequestError(description="redirect_uri is required: this client registered several.")
    if not matches(requested, client.redirect_uris):
        raise InvalidRequestError(description="redirect_uri does not match any URI registered for this client.")
    return requested, True


def _forwarded(params: dict[str, str]) -> dict[str, str]:
    forward: dict[str, str] = {}
    for name, limit in FORWARDED_PARAMS.items():
        value = params.get(name)
        if value and len(value) <= limit and value.isprintable():
            if name == "prompt" and not set(value.split()) <= _PROMPT_VALUES:
                continue
            forward[name] = value
    return forward


UNAPPROVED_HEADLINE = "This sign-in request is not valid"
UNAPPROVED_EXPLANATION = (
    "The application that sent you here made a sign-in request this server cannot accept. "
    "You have not approved this application, so the error is shown here instead of being "
    "sent back to it. If you started this sign-in, tell the application's developers."
)


class AuthorizeHandler:
    def __init__(self, ctx: ShimContext, consent_page: ConsentPage) -> None:
        self.ctx = ctx
        self.consent_page = consent_page

    async def __call__(self, request: Request) -> Response:
        if self.ctx.strict is not None:
            refused = await self._check_rates(request)
            if refused is not None:
                return refused
        csrf = self.consent_page.csrf(request)
        try:
            client, ticket = await parse_authorization_request(self.ctx, request, digest(csrf))
        except RedirectableError as exc:
            login_step("authorize", exc.err.error)
            if self.ctx.clients.is_operator_approved(exc.redirect_uri):
                return redirect_error(exc.err, exc.redirect_uri, state=exc.state, issuer=self.ctx.issuer)
            return html_error(exc.err, status_code=400, headline=UNAPPROVED_HEADLINE, explanation=UNAPPROVED_EXPLANATION)
        except OAuth2Error as err:
            login_step("authorize", err.error)
            # 400 for an unknown client too: invalid_client's 401 asks for credentials a browser has not.
            return html_error(err, status_code=400)
        login_step("authorize", "consent", code_challenge=ticket.code_challenge)
        return self.consent_page.render(client, ticket, csrf)

    async def _check_rates(self, request: Request) -> Response | None:
        """Strict mode's limits for this request, or the page refusing it. The client is
        counted by the ``client_id`` it names, unverified: a made-up one still counts against
        the address."""
        address = client_address(request)
        try:
            # The shim's own query parser: a sixth of Starlette's query_params here (8 vs 48 µs).
            client_id = single_params(request).get("client_id", "")
        except ParameterError:
            client_id = ""  # refused right after, by parse_authorization_request
        try:
            await check_rates(
                self.ctx.strict,
                (RateBucket.AUTHORIZE_IP, address),
                (RateBucket.AUTHORIZE_CLIENT_IP, client_and_address(client_id, address)),
            )
        except RateLimited as refused:
            return rate_limited_page(refused.decision)
        except StrictModeUnavailable as exc:
            return unavailable_page(exc)
        return None
