"""Token requests without a user at the shim: machine clients and enterprise ID-JAGs, wired.

The shim's configuration (``machine_clients``, ``enterprise_idps``) becomes the two checkers
the token endpoint's machine grants call (:class:`.machine_clients.MachineClients`,
:class:`.id_jag.IdJagVerifier`), sharing one replay guard and fetching keys on the IdP
client's transport. :func:`authenticate_machine_client` adds the token endpoint's view of a
client that is not a machine client: a client the shim knows as public (a dynamically
registered or metadata document client) is ``unauthorized_client`` for these grants (RFC 6749
§5.2), a client_id the shim does not know at all is ``invalid_client`` (401, RFC 6749 §5.2).
:func:`revoking_machine_client` is the revocation endpoint's view (RFC 7009 §2.1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .clients import presented_credentials
from .config import ConfigurationError
from .context import ShimContext
from .errors import InvalidClientError
from .id_jag import EnterpriseIdP, IdJagVerifier
from .machine_clients import (
    CLIENT_CREDENTIALS_GRANT_TYPE,
    MachineClient,
    MachineClients,
    NotAMachineClient,
)
from .remote_keys import JsonFetchError
from .rfc7523 import JWT_BEARER_CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT_TYPE, ReplayGuard
from .upstream import UpstreamError

__all__ = ["authenticate_machine_client", "build_machine_access", "revoking_machine_client"]


def build_machine_access(
    ctx: ShimContext,
    clients: Sequence[MachineClient],
    idps: Sequence[EnterpriseIdP],
    *,
    replay_guard: ReplayGuard,
) -> tuple[MachineClients | None, IdJagVerifier | None]:
    """The checkers for ``clients`` and ``idps``; :class:`ConfigurationError` for a
    configuration that could never serve a request."""
    for option, values, kind in (("machine_clients", clients, MachineClient), ("enterprise_idps", idps, EnterpriseIdP)):
        for value in values:
            if not isinstance(value, kind):
                raise ConfigurationError(f"{option} takes {kind.__name__}(...) values, got {type(value).__name__}.")
    jag_clients = [c.client_id for c in clients if JWT_BEARER_GRANT_TYPE in c.grant_types]
    if idps and not jag_clients:
        raise ConfigurationError(
            "enterprise_idps needs a machine client allowed the jwt-bearer grant: "
            f"MachineClient(..., grant_types={{{JWT_BEARER_GRANT_TYPE!r}}})."
        )
    if jag_clients and not idps:
        raise ConfigurationError(
            f"machine client {jag_clients[0]} may use the jwt-bearer grant but no enterprise_idps are configured."
        )
    for client in clients:
        _check_token_mode(ctx, client)

    async def fetch(url: str) -> Mapping[str, Any]:
        """Key sets come over the IdP client's transport (its pool or the operator's httpx
        client: proxies, TLS settings and timeouts are the same as for the IdP)."""
        try:
            return await ctx.upstream_client.get_json(url, what="key set")
        except UpstreamError as exc:
            raise JsonFetchError(exc.description) from None

    try:
        machine = MachineClients(
            clients, issuer=ctx.issuer, token_endpoint=ctx.url(ctx.paths.token), replay_guard=replay_guard, fetch=fetch
        )
        verifier = (
            IdJagVerifier(issuer=ctx.issuer, resource=ctx.resource, idps=idps, replay_guard=replay_guard, fetch=fetch)
            if idps
            else None
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return (machine if clients else None), verifier


def _check_token_mode(ctx: ShimContext, client: MachineClient) -> None:
    """A client's tokens must be ones the MCP endpoint's verifier accepts: the shim's own in
    issued-token mode, the IdP's otherwise."""
    issued = ctx.issued is not None
    if JWT_BEARER_GRANT_TYPE in client.grant_types and not issued:
        raise ConfigurationError(
            f"machine client {client.client_id}: the jwt-bearer grant is answered with the shim's own tokens: "
            "it needs issue_tokens=True."
        )
    if CLIENT_CREDENTIALS_GRANT_TYPE in client.grant_types and (client.mode == "issued") != issued:
        raise ConfigurationError(f"machine client {client.client_id}: {_MODE_MISMATCH[client.mode]}")


# Why a client_credentials client's ``mode`` does not fit the shim's token mode.
_MODE_MISMATCH = {
    "issued": "mode='issued' needs issue_tokens=True "
    "(or mode='upstream' for the identity provider's own client_credentials tokens).",
    "upstream": "mode='upstream' hands out the identity provider's tokens, "
    "which the MCP endpoint refuses with issue_tokens=True; use mode='issued'.",
}


async def authenticate_machine_client(
    ctx: ShimContext, form: Mapping[str, str], authorization: str | None, *, grant_type: str
) -> MachineClient:
    """The authenticated machine client of a token request for ``grant_type`` (RFC 6749 §2.3, §5.2).

    Refusals: ``unauthorized_client`` for a client the shim knows but may not use the grant
    (a machine client registered for other grants, a dynamically registered client, a client
    ID metadata document); ``invalid_client`` (401) for a client_id nobody issued or a failed
    authentication.
    """
    machine = ctx.machine_clients
    if machine is None:
        raise InvalidClientError(description="This server has no clients for this grant.", status_code=401)
    try:
        return (await machine.authenticate(form, authorization, grant_type=grant_type)).client
    except NotAMachineClient as refusal:
        if await _is_public_client(ctx, refusal.client_id):
            raise
        raise InvalidClientError(description="Unknown client_id.", status_code=401) from None


async def revoking_machine_client(ctx: ShimContext, form: Mapping[str, str], authorization: str | None) -> MachineClient | None:
    """The authenticated machine client of a revocation request, or ``None`` when the request
    is not a machine client's (the shim's public clients are authenticated as before).

    RFC 7009 §2.1: the client authenticates as at the token endpoint. A request is a machine
    client's when it carries an RFC 7523 §2.2 client assertion or its client_id (body or Basic
    header) names a machine client; its refusals are the token endpoint's, except that an
    assertion naming no machine client is ``invalid_client`` (401): a revocation asks for no
    grant, so ``unauthorized_client`` does not apply.
    """
    machine = ctx.machine_clients
    if machine is None:
        return None
    asserted = form.get("client_assertion_type") == JWT_BEARER_CLIENT_ASSERTION_TYPE
    if not asserted and not machine.is_machine_client(presented_credentials(dict(form), authorization).client_id):
        return None
    try:
        return (await machine.authenticate_for_revocation(form, authorization)).client
    except NotAMachineClient:
        raise InvalidClientError(description="Unknown client_id.", status_code=401) from None


async def _is_public_client(ctx: ShimContext, client_id: str) -> bool:
    """Does ``client_id`` name a client the shim serves through the authorization code flow?
    A URL is a metadata document client (never fetched here: the answer is the same)."""
    if ctx.metadata_documents and client_id.startswith(("https://", "http://")):
        return True
    try:
        await ctx.clients.resolve(client_id)
    except InvalidClientError:
        return False
    return True
