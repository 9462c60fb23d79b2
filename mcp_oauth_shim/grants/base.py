"""What a grant handler of the token endpoint is (RFC 6749 §4, §6 and extension grants §4.5).

The token endpoint (:mod:`..endpoints.token`) reads the request, checks what every grant
shares (``resource``, RFC 8707 §2.2) and hands the form to the handler registered for the
request's ``grant_type``. A handler checks its own parameters and answers with tokens or raises
:class:`..errors.OAuth2Error` (RFC 6749 §5.2).

Two kinds of handler, told apart by their clients: a :class:`TokenGrant` gets the public
client the endpoint resolved (the clients of the authorization code flow); a
:class:`ConfidentialGrant` gets one of the operator's machine clients, which the endpoint
authenticated (RFC 6749 §2.3: secrets or RFC 7523 §2.2 client assertions). Each says with :meth:`TokenGrant.offered` whether this shim's
configuration serves it; only those are dispatched to and advertised (RFC 8414 §2
``grant_types_supported``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from starlette.responses import Response

from ..clients import Client
from ..context import ShimContext
from ..machine_clients import MachineClient

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # annotations only: not a runtime dependency

__all__ = ["ConfidentialGrant", "GrantHandler", "TokenGrant", "is_confidential"]


class GrantHandler(Protocol):
    """What every ``grant_type`` handler has; built once per shim with its context."""

    grant_type: ClassVar[str]

    def __init__(self, ctx: ShimContext) -> None: ...

    @staticmethod
    def offered(ctx: ShimContext) -> bool:
        """Does this shim's configuration serve the grant?"""
        ...


class TokenGrant(GrantHandler, Protocol):
    """One ``grant_type`` of the token endpoint, for the client the endpoint resolved."""

    async def respond(self, form: dict[str, str], client: Client) -> Response:
        """The token response (RFC 6749 §5.1) for an authenticated ``client``'s ``form``."""
        ...


class ConfidentialGrant(GrantHandler, Protocol):
    """A ``grant_type`` of the operator's machine clients, which authenticate (RFC 6749 §2.3)."""

    async def respond_to(self, form: dict[str, str], client: MachineClient) -> Response:
        """The token response (RFC 6749 §5.1) for the authenticated machine ``client``'s ``form``."""
        ...


def is_confidential(handler: TokenGrant | ConfidentialGrant) -> TypeIs[ConfidentialGrant]:
    """Is ``handler`` a grant of the machine clients (:class:`ConfidentialGrant`)?"""
    return hasattr(handler, "respond_to")
