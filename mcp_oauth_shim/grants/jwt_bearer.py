"""The jwt-bearer grant (RFC 7523 §2.1) with an ID-JAG: MCP enterprise-managed authorization.

The MCP client, a machine client the operator registered, authenticates "with its credentials
as registered" (the extension's §5: a client secret, Basic or in the body, or an RFC 7523 §2.2
client assertion) and presents ``assertion``: an Identity Assertion JWT Authorization Grant an
enterprise IdP signed for one of its users. The ID-JAG is checked by
:class:`..id_jag.IdJagVerifier` (§5.1: ``typ``, ``aud`` our issuer, ``client_id`` the
authenticated client, ``resource`` ours, signature by a trusted IdP, single use).

The shim then issues its own RFC 9068 access token (§5.2): ``sub`` the enterprise user (the
ID-JAG's ``sub``), ``client_id`` the client, ``aud`` the resource, and the scopes that are in
the grant, requested (RFC 7521 §4.1; all of the grant's when none are) and allowed to the
client. No refresh token: the ID-JAG is short-lived by design, so that the enterprise IdP
decides again (its policy, the user's status) whenever the client needs a new access token;
the client asks the IdP for a new ID-JAG instead (draft-ietf-oauth-identity-assertion-authz-
grant, "Refresh Token": the authorization server SHOULD NOT return one).
"""

from __future__ import annotations

from typing import ClassVar

from starlette.responses import Response

from ..context import ShimContext
from ..errors import InvalidRequestError, InvalidScopeError, json_error, oauth_error
from ..machine_clients import MachineClient
from ..rfc7523 import JWT_BEARER_GRANT_TYPE

__all__ = ["ENTERPRISE_CLAIMS", "JwtBearerGrant"]

#: ID-JAG claims about the user carried into the access token (OpenID Connect Core §5.1
#: standard claims), for tools to show who is calling.
ENTERPRISE_CLAIMS = ("email", "name", "preferred_username")


class JwtBearerGrant:
    grant_type: ClassVar[str] = JWT_BEARER_GRANT_TYPE

    @staticmethod
    def offered(ctx: ShimContext) -> bool:
        """Are ID-JAGs accepted (an enterprise IdP and a machine client allowed the grant)?"""
        return ctx.id_jag is not None and ctx.machine_clients is not None and ctx.machine_clients.serves(JWT_BEARER_GRANT_TYPE)

    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx

    async def respond_to(self, form: dict[str, str], client: MachineClient) -> Response:
        ctx = self.ctx
        if ctx.id_jag is None or ctx.issued is None:  # refused at configuration time
            return json_error(oauth_error("server_error", "This server accepts no identity assertions.", 500))
        if not form.get("assertion"):
            raise InvalidRequestError(description="assertion is required (RFC 7523 section 2.1).")
        grant = await ctx.id_jag.verify(form["assertion"], client_id=client.client_id)
        requested = form.get("scope")
        scopes = grant.granted_scopes(requested)
        if client.scopes and requested is None:
            # Nothing requested: what both the IdP and the operator allow.
            scopes = tuple(s for s in scopes if s in client.scopes)
        elif client.scopes:
            # Requested: each scope must be allowed to the client too (invalid_scope names those that are not).
            client.granted_scopes(requested)
        elif grant.scopes is None and scopes:
            # Neither the IdP (no scope claim) nor the operator (no scopes) granted any: what the
            # client asks for is no grant (RFC 6749 §3.3).
            raise InvalidScopeError(description="Neither the identity assertion nor this client's configuration grants a scope.")
        return ctx.issued.tokens.issue(
            client_id=client.client_id,
            subject=grant.subject,
            scopes=scopes,
            # What the token says about the enterprise user beyond ``sub``: the standard
            # claims the IdP put in the ID-JAG, when they are strings.
            identity_claims={name: grant.claims[name] for name in ENTERPRISE_CLAIMS if isinstance(grant.claims.get(name), str)},
        )
