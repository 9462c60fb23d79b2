"""What a grant handler of the token endpoint is (RFC 6749 §4, §6 and extension grants §4.5).

The token endpoint (:mod:`..endpoints.token`) reads the request, authenticates the client and
checks what every grant shares (``resource``, RFC 8707 §2.2); then it hands the form to the
handler registered for the request's ``grant_type``. A handler checks its own parameters and
answers with tokens or raises :class:`..errors.OAuth2Error` (RFC 6749 §5.2).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from starlette.responses import Response

from ..clients import Client
from ..context import ShimContext

__all__ = ["TokenGrant"]


class TokenGrant(Protocol):
    """One ``grant_type`` of the token endpoint; built once per shim with its context."""

    grant_type: ClassVar[str]

    def __init__(self, ctx: ShimContext) -> None: ...

    async def respond(self, form: dict[str, str], client: Client) -> Response:
        """The token response (RFC 6749 §5.1) for an authenticated ``client``'s ``form``."""
        ...
