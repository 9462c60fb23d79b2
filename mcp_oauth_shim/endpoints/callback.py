"""``GET /oauth/callback``: the one redirect URI registered at the IdP.

Honoured only with a state the shim signed, within its lifetime, in the browser that approved
(the flow cookie set on consent, deleted here so a replay in the same browser fails too), and,
when the IdP names itself, only from the expected issuer (RFC 9207 §2.4, mix-up defence). The
IdP's code is then wrapped for the client and relayed with the client's ``state`` and the
shim's own ``iss``.

In strict mode a state is honoured once, whichever replica sees it (without strict mode the
flow cookie stops a replay in the same browser only).
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import Response

from ..context import ShimContext
from ..errors import InvalidRequestError, html_error, oauth_error, redirect_error
from ..forms import append_query
from ..log_context import bind_login
from ..payloads import AuthorizationCode, UpstreamState
from ..sealing import SealError, digest
from ..strict import StrictModeUnavailable
from ..strict.answers import unavailable_page
from ..strict.checks import first_use
from ..telemetry import login_step_answered
from ..upstream import UpstreamError
from .base import ParameterError, redirect, set_cookie, single_params
from .consent import FLOW_COOKIE_PREFIX

logger = logging.getLogger(__name__)

# Errors an IdP may send that mean the same to the MCP client; anything else is server_error.
RELAYED_ERRORS = {
    "access_denied",
    "invalid_scope",
    "temporarily_unavailable",
    "login_required",
    "consent_required",
    "interaction_required",
    "account_selection_required",
}
MAX_CODE_LENGTH = 4096


class CallbackHandler:
    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx

    async def __call__(self, request: Request) -> Response:
        response = await self._relay(request)
        login_step_answered("callback", response)
        return response

    async def _relay(self, request: Request) -> Response:
        ctx = self.ctx
        try:
            params = single_params(request)
            state = UpstreamState.open(ctx.sealer, params.get("state", ""), max_age=ctx.lifetimes.state)
        except ParameterError as exc:
            return html_error(InvalidRequestError(description=exc.description))
        except SealError as exc:
            logger.warning("callback refused: state %s", exc.reason)
            return html_error(InvalidRequestError(description=f"The sign-in state is {exc.reason}; start the sign-in again."))
        bind_login(state.code_challenge)
        cookie_name = ctx.cookie_name(FLOW_COOKIE_PREFIX + state.flow_id)
        try:
            response = await self._answer(request, params, state, cookie_name)
        except StrictModeUnavailable as exc:
            return unavailable_page(exc)  # the flow cookie stays: the same answer may be retried
        # Whatever the answer, this flow is over: the browser forgets its binding (an empty, expired cookie).
        set_cookie(response, cookie_name, '""', max_age=0, secure=ctx.secure_cookies)
        return response

    async def _answer(self, request: Request, params: dict[str, str], state: UpstreamState, cookie_name: str) -> Response:
        """The answer to the callback of an open ``state``: the code for the client, the IdP's
        error relayed to it, or a page refusing the callback."""
        ctx = self.ctx
        binding = request.cookies.get(cookie_name)
        if not binding or not hmac.compare_digest(digest(binding), state.browser_binding_digest):
            logger.warning("callback refused: not the browser that approved, or already used")
            return _refused("This sign-in was started in another browser or has already completed.")
        if ctx.strict is not None and not await first_use(ctx.strict, "state", params["state"], ctx.lifetimes.state):
            logger.warning("callback refused: state already used")
            return _refused("This sign-in has already completed.")
        try:
            upstream = await ctx.upstream_client.metadata()
        except UpstreamError as err:
            page = html_error(oauth_error(err.error, err.description, err.status_code))
            page.headers.update(err.headers)  # Retry-After, when the IdP gave one
            return page
        iss = params.get("iss")
        if iss is not None and upstream.issuer is not None and iss != upstream.issuer:
            logger.warning("callback refused: iss is not the configured identity provider (mix-up)")
            return _refused("The answer came from an unexpected identity provider.")
        if iss is None and upstream.raw.get("authorization_response_iss_parameter_supported") is True:
            logger.warning("callback refused: the identity provider promised iss and sent none")
            return _refused("The identity provider's answer lacks its issuer.")

        error = params.get("error")
        code = params.get("code")
        if error is not None:
            relayed = error if error in RELAYED_ERRORS else "server_error"
            description = "The identity provider refused the sign-in." if relayed != "access_denied" else "The user denied access."
            logger.info("identity provider returned %s", relayed)
        elif not code or len(code) > MAX_CODE_LENGTH:
            relayed, description = "server_error", "The identity provider sent no usable code."
        else:
            answer = {"code": AuthorizationCode.wrapping(code, state).seal(ctx.sealer)}
            if state.client_state is not None:
                answer["state"] = state.client_state
            answer["iss"] = ctx.issuer
            logger.info("relaying the authorization code to the client (flow %s)", state.flow_id)
            return redirect(append_query(state.redirect_uri, answer))
        return redirect_error(oauth_error(relayed, description), state.redirect_uri, state=state.client_state, issuer=ctx.issuer)


def _refused(description: str) -> Response:
    """The page refusing a callback that must not complete (403: not a malformed request)."""
    return html_error(InvalidRequestError(description=description), status_code=403)
