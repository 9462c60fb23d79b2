"""A development identity provider that behaves like Auth0 towards the shim. NOT FOR PRODUCTION.

It exists so that the quick-start demo and fast tests run without an account anywhere: one
static confidential client, one demo account (``demo`` / ``demo``), keys generated in memory at
start, nothing persisted. It logs a warning when created and its login page says the same.
It is built on authlib's authorization-server support (RFC 6749 grants, RFC 7636 PKCE,
RFC 7009 revocation, RFC 9068 JWT access tokens, OpenID Connect ID tokens) served by Starlette.

    from mcp_oauth_shim.dev_idp import DevIdP
    idp = DevIdP(issuer="http://127.0.0.1:9000",
                 redirect_uris=["http://127.0.0.1:8000/oauth/callback"])
    await idp.serve(port=9000)          # listens on 127.0.0.1 unless told otherwise

Or from a shell: ``python -m mcp_oauth_shim.dev_idp --help``.
"""

from .app import DEFAULT_SCOPES, DEMO_PASSWORD, DEMO_USERNAME, DevIdP

__all__ = ["DEFAULT_SCOPES", "DEMO_PASSWORD", "DEMO_USERNAME", "DevIdP"]
