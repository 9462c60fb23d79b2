"""The consent page and ``POST /oauth/consent``.

MCP security guidance (confused deputy): the shim uses ONE client at the IdP for every MCP
client, so an IdP session cookie alone must never let a new client get a code. The person
approves this client here first. The form is CSRF-protected (double-submit cookie plus a
same-origin check), the page cannot be framed and is never cached. Approval sets a cookie
that binds the rest of the flow to this browser (:mod:`.callback` checks it).

In strict mode an approved consent ticket is honoured once, whichever replica sees it: a
replayed form is refused like an expired one.
"""

from __future__ import annotations

import functools
import hmac
import html
import logging
import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..clients import Client
from ..context import ShimContext
from ..errors import (
    AccessDeniedError,
    InvalidRequestError,
    html_error,
    oauth_error,
    redirect_error,
)
from ..forms import append_query
from ..log_context import bind_login
from ..media_types import FORM, is_media_type
from ..pages import PAGE_HEADERS_RAW, load_template
from ..payloads import ConsentTicket, UpstreamState
from ..rfc8707 import audience_params
from ..sealing import SealError, digest, random_token
from ..strict import StrictModeUnavailable
from ..strict.answers import unavailable_page
from ..strict.checks import first_use
from ..telemetry import login_step_answered
from ..upstream import UpstreamError
from ..urls import is_loopback_host
from .base import ParameterError, parse_form, read_body_limited, redirect, set_cookie

logger = logging.getLogger(__name__)

CSRF_COOKIE = "mcp-shim-csrf"
FLOW_COOKIE_PREFIX = "mcp-shim-flow-"
MAX_CONSENT_BODY = 16 * 1024


_TEMPLATE = load_template("consent.html")
# Every value in the page is HTML-escaped, so "<ticket>" can only be this placeholder.
_TICKET_MARK = "<ticket>"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ConsentPage:
    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx
        self._csrf_cookie = ctx.cookie_name(CSRF_COOKIE)
        self._static = {
            "resource_name": html.escape(ctx.resource_name or urlsplit(ctx.resource).netloc),
            "resource": html.escape(ctx.resource),
            "action": html.escape(ctx.route_path(ctx.paths.consent)),
        }
        # The page differs per request only in its ticket: the rest is rendered once per
        # client, redirect URI and scopes (a bounded LRU).
        self._page_around_ticket = functools.lru_cache(maxsize=256)(self._render_around_ticket)

    def csrf(self, request: Request) -> str:
        """The browser's CSRF cookie value, or a new one: the consent ticket is bound to it."""
        csrf = request.cookies.get(self._csrf_cookie)
        # Only ever reuse a value we could have minted.
        return csrf if csrf and _TOKEN.fullmatch(csrf) else random_token()

    def render(self, client: Client, ticket: ConsentTicket, csrf: str) -> Response:
        """The consent page for ``ticket`` (bound to ``csrf``), which sets the CSRF cookie."""
        ctx = self.ctx
        head, tail = self._page_around_ticket(client, ticket.redirect_uri, ticket.scope)
        response = HTMLResponse(head + ticket.seal(ctx.sealer).encode("ascii") + tail)
        response.raw_headers.extend(PAGE_HEADERS_RAW)
        set_cookie(response, self._csrf_cookie, csrf, max_age=ctx.lifetimes.consent, secure=ctx.secure_cookies)
        return response

    def _render_around_ticket(self, client: Client, redirect_uri: str, scope: str) -> tuple[bytes, bytes]:
        redirect = urlsplit(redirect_uri)
        redirect_host = redirect.netloc or (redirect.scheme + ":")
        unverified = ""
        if client.kind == "registered":
            unverified = " This application registered itself; its name is not verified."
        elif client.kind == "metadata_document":
            # CIMD draft section 8.5: the client_id's host is the identity that was verified.
            unverified = f" This application is published by {urlsplit(client.client_id).netloc}."
        # Every loopback host the redirect URI policy lets plain http use (127/8, *.localhost, ...).
        if redirect.scheme == "http" and is_loopback_host(redirect.hostname):
            unverified += " The answer goes to a program on this computer."
        page = _TEMPLATE.format(
            client_name=html.escape(client.name or "An unnamed application"),
            redirect_host=html.escape(redirect_host),
            unverified=html.escape(unverified),
            scopes="".join(f"<li>{html.escape(s)}</li>" for s in scope.split()) or "<li>basic sign-in</li>",
            ticket=_TICKET_MARK,  # the ticket is base64url and dots only: nothing to escape
            client_id_short=html.escape(_short(client.client_id)),
            **self._static,
        )
        head, tail = page.split(_TICKET_MARK)
        return head.encode("utf-8"), tail.encode("utf-8")


class ConsentHandler:
    """``POST /oauth/consent``: the person's decision."""

    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx

    async def __call__(self, request: Request) -> Response:
        response = await self._decide(request)
        login_step_answered("consent", response, success="approve")
        return response

    async def _decide(self, request: Request) -> Response:
        ctx = self.ctx
        if request.headers.get("origin", ctx.origin) != ctx.origin:  # an absent Origin is no other site
            return _invalid("The consent form was posted from another site.", 403)
        if not is_media_type(request.headers.get("content-type"), FORM):
            return _invalid("The consent form must be form-encoded.")
        body = await read_body_limited(request, MAX_CONSENT_BODY)
        if body is None:
            return _invalid("The consent form is too large.", 413)
        try:
            form = parse_form(body)
        except ParameterError:
            return _invalid("The consent form is malformed.")
        try:
            ticket = ConsentTicket.open(ctx.sealer, form.get("ticket", ""), max_age=ctx.lifetimes.consent)
        except SealError as exc:
            return _invalid(f"The consent form is {exc.reason}; start the sign-in again.")
        bind_login(ticket.code_challenge)
        csrf = request.cookies.get(ctx.cookie_name(CSRF_COOKIE))
        if not csrf or not hmac.compare_digest(digest(csrf), ticket.csrf_digest):
            return _invalid("This consent form was not shown in this browser; start the sign-in again.", 403)
        decision = form.get("decision")
        if decision == "deny":
            # Strict mode: the person's answer spends the ticket, so a denied form cannot be
            # approved afterwards (the client was already told access_denied).
            refused = await _spent(ctx, form["ticket"])
            if refused is not None:
                return refused
            return redirect_error(
                AccessDeniedError(description="The user denied access."),
                ticket.redirect_uri,
                state=ticket.client_state,
                issuer=ctx.issuer,
            )
        if decision != "approve":
            return _invalid("Choose Allow or Deny.")
        try:
            upstream = await ctx.upstream_client.metadata()
        except UpstreamError as err:
            logger.warning("cannot start upstream login: %s", err.description)
            # The IdP's fault, not the request's: its own error code (temporarily_unavailable or
            # server_error) and status (502/503/504), never invalid_request.
            page = html_error(oauth_error(err.error, f"{err.description} Try again shortly.", err.status_code))
            page.headers.update(err.headers)  # Retry-After, when the IdP gave one
            return page
        refused = await _spent(ctx, form["ticket"])
        if refused is not None:
            return refused
        flow = random_token(6)
        binding = random_token()
        # Issued-token mode with the user from the ID token: a nonce binds the ID token to this
        # login (OpenID Connect Core §3.1.2.1, §3.1.3.7 item 11).
        nonce = random_token() if ctx.issued is not None and ctx.issued.identity.uses_id_token else None
        state = UpstreamState.approved(ticket, browser_binding_digest=digest(binding), flow_id=flow, nonce=nonce).seal(ctx.sealer)
        params = {
            "response_type": "code",
            "client_id": ctx.upstream.client_id,
            "redirect_uri": ctx.callback_url,
            "state": state,
            "code_challenge": ticket.code_challenge,
            "code_challenge_method": "S256",
            "scope": ctx.upstream.upstream_scope(ticket.scope),
            **audience_params(ctx.upstream, ctx.resource),
            **ticket.forwarded_params,
            # The operator's settings win over the client's login-page hints.
            **dict(ctx.upstream.extra_authorize_params),
        }
        if nonce is not None:
            params["nonce"] = nonce
        response = redirect(append_query(upstream.authorization_endpoint, params), 303)
        set_cookie(
            response, ctx.cookie_name(FLOW_COOKIE_PREFIX + flow), binding, max_age=ctx.lifetimes.state, secure=ctx.secure_cookies
        )
        logger.info("consent approved; redirecting to the identity provider (flow %s)", flow)
        return response


async def _spent(ctx: ShimContext, ticket: str) -> Response | None:
    """Strict mode: spend the consent ticket ``ticket`` once, whichever replica sees it; the
    page refusing a ticket already spent or that strict mode cannot check, else ``None``."""
    try:
        if ctx.strict is not None and not await first_use(ctx.strict, "consent", ticket, ctx.lifetimes.consent):
            return _invalid("This consent form was already used; start the sign-in again.")
    except StrictModeUnavailable as exc:
        return unavailable_page(exc)
    return None


def _invalid(description: str, status_code: int = 400) -> Response:
    """The page refusing a consent form: ``invalid_request``, never redirected (the form may not
    come from the person who saw the page)."""
    return html_error(InvalidRequestError(description=description), status_code=status_code)


def _short(client_id: str) -> str:
    return client_id if len(client_id) <= 48 else client_id[:24] + "..." + client_id[-12:]
