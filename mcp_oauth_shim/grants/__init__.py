"""The grants of the token endpoint, one module each, and the registry the endpoint dispatches on.

- :mod:`.authorization_code`: RFC 6749 §4.1.3 with PKCE (RFC 7636);
- :mod:`.refresh_token`: RFC 6749 §6;
- :mod:`.upstream_exchange`: how the grants that proxy the IdP call it and relay its tokens;
- :mod:`.base`: what a grant handler is (:class:`.base.TokenGrant`).

Adding a grant is one module with a class following :class:`.base.TokenGrant` and one entry in
:data:`GRANTS`.
"""

from __future__ import annotations

from .authorization_code import AuthorizationCodeGrant
from .base import TokenGrant
from .refresh_token import RefreshTokenGrant

__all__ = ["GRANTS", "AuthorizationCodeGrant", "RefreshTokenGrant", "TokenGrant"]

# grant_type (RFC 6749 §4.1.3, §6) -> its handler class.
GRANTS: dict[str, type[TokenGrant]] = {
    AuthorizationCodeGrant.grant_type: AuthorizationCodeGrant,
    RefreshTokenGrant.grant_type: RefreshTokenGrant,
}
