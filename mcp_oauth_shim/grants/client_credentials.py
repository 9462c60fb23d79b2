"""The ``client_credentials`` grant (RFC 6749 §4.4; OAuth 2.1 §4.2; the MCP "OAuth Client
Credentials" extension), for the operator's machine clients only.

The client authenticates (RFC 6749 §4.4.2: ``client_secret_basic``, ``client_secret_post`` or
RFC 7523 §2.2 ``private_key_jwt``, its ``jti`` single-use); the scopes are the requested ones
the client is allowed, all of those when none are requested, ``invalid_scope`` when none of the
requested ones is allowed (RFC 6749 §3.3, :meth:`.MachineClient.narrowed_scopes`).
The access token then comes from one of two places, per client (:attr:`.MachineClient.mode`):

- ``issued``: the shim signs an RFC 9068 access token for the resource whose ``sub`` and
  ``client_id`` are the machine client (RFC 9068 §2.2: ``sub`` names the client when no
  resource owner is involved); no refresh token (RFC 6749 §4.4.3);
- ``upstream``: the IdP's own ``client_credentials`` grant, requested with the shim's client at
  the IdP and the resource's audience parameters, exactly as for user logins (RFC 8707); the
  IdP's access token is answered as it is, and verified like any IdP token at the MCP endpoint.
"""

from __future__ import annotations

from typing import ClassVar

from starlette.responses import Response

from ..context import ShimContext
from ..errors import json_error, oauth_error
from ..machine_clients import CLIENT_CREDENTIALS_GRANT_TYPE, MachineClient
from .upstream_exchange import UpstreamTokenExchange

__all__ = ["ClientCredentialsGrant"]


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = CLIENT_CREDENTIALS_GRANT_TYPE

    @staticmethod
    def offered(ctx: ShimContext) -> bool:
        return ctx.machine_clients is not None and ctx.machine_clients.serves(CLIENT_CREDENTIALS_GRANT_TYPE)

    def __init__(self, ctx: ShimContext) -> None:
        self.ctx = ctx
        self._upstream = UpstreamTokenExchange(ctx)

    async def respond_to(self, form: dict[str, str], client: MachineClient) -> Response:
        scopes = client.narrowed_scopes(form.get("scope"))
        if client.mode == "upstream":
            return await self._from_upstream(scopes)
        issued = self.ctx.issued
        if issued is None:  # refused at configuration time; kept for the type checker
            return json_error(oauth_error("server_error", "This server does not issue its own tokens.", 500))
        return issued.tokens.issue(client_id=client.client_id, subject=client.client_id, scopes=scopes)

    async def _from_upstream(self, scopes: tuple[str, ...]) -> Response:
        """The IdP's client_credentials token for the shim's client (RFC 6749 §4.4.2, §4.4.3)."""
        upstream_form = {"grant_type": CLIENT_CREDENTIALS_GRANT_TYPE}
        if scopes:
            upstream_form["scope"] = self.ctx.upstream.upstream_scope(" ".join(scopes))
        # RFC 6749 §4.4.3: no refresh token (no client to bind one to); an IdP's is dropped.
        return await self._upstream.exchange(upstream_form, None, " ".join(scopes))
