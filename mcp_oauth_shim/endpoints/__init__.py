"""The shim's HTTP endpoints, one module per endpoint (handlers take a Starlette request).

- :mod:`.metadata`: the RFC 8414 authorization server metadata (also at the OIDC discovery
  paths clients probe) and the RFC 9728 protected resource metadata;
- :mod:`.register`: ``POST /oauth/register`` (RFC 7591);
- :mod:`.authorize`: ``GET /oauth/authorize``;
- :mod:`.consent`: the consent page and ``POST /oauth/consent``;
- :mod:`.callback`: ``GET /oauth/callback``, where the IdP sends the person back;
- :mod:`.token`: ``POST /oauth/token``, dispatching to the grants of :mod:`..grants`;
- :mod:`.revoke`: ``POST /oauth/revoke``;
- :mod:`.base`: what the handlers share (bounded bodies, single-valued parameters, redirects,
  cookies, no-store JSON, CORS).
"""
