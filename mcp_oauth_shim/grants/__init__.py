"""The grants of the token endpoint, one module each, and the registry the endpoint dispatches on.

- :mod:`.authorization_code`: RFC 6749 §4.1.3 with PKCE (RFC 7636);
- :mod:`.refresh_token`: RFC 6749 §6;
- :mod:`.client_credentials`: RFC 6749 §4.4, for the operator's machine clients;
- :mod:`.jwt_bearer`: RFC 7523 §2.1 with an ID-JAG (MCP enterprise-managed authorization);
- :mod:`.upstream_exchange`: how the grants that proxy the IdP call it and relay its tokens;
- :mod:`.base`: what a grant handler is (:class:`.base.TokenGrant`,
  :class:`.base.ConfidentialGrant`).

Adding a grant is one module with a class following one of those and one entry in
:data:`GRANTS`; :func:`offered_grants` keeps those this shim's configuration serves.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..context import ShimContext
from .authorization_code import AuthorizationCodeGrant
from .base import ConfidentialGrant, TokenGrant, is_confidential
from .client_credentials import ClientCredentialsGrant
from .jwt_bearer import JwtBearerGrant
from .refresh_token import RefreshTokenGrant

__all__ = [
    "GRANTS",
    "AuthorizationCodeGrant",
    "ClientCredentialsGrant",
    "ConfidentialGrant",
    "GrantClass",
    "JwtBearerGrant",
    "RefreshTokenGrant",
    "TokenGrant",
    "is_confidential",
    "offered_grants",
]

GrantClass = type[TokenGrant] | type[ConfidentialGrant]

# grant_type (RFC 6749 §4.1.3, §6, §4.4; RFC 7523 §2.1) -> its handler class.
GRANTS: dict[str, GrantClass] = {
    AuthorizationCodeGrant.grant_type: AuthorizationCodeGrant,
    RefreshTokenGrant.grant_type: RefreshTokenGrant,
    ClientCredentialsGrant.grant_type: ClientCredentialsGrant,
    JwtBearerGrant.grant_type: JwtBearerGrant,
}


def offered_grants(ctx: ShimContext, grants: Mapping[str, GrantClass] = GRANTS) -> dict[str, GrantClass]:
    """The grants of ``grants`` this shim's configuration serves, in registry order."""
    return {name: grant for name, grant in grants.items() if grant.offered(ctx)}
